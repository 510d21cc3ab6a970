"""The ``cs`` (client-server) execution strategy: agl-server, the algorithm and runner processes.

By default (role ``both``) it starts agl-server as a child process over a data directory, N
runner processes that take work on the server's Work stream, and runs the algorithm in this
process against the server. The roles split the same layout over machines:

- ``algorithm``: agl-server (or ``server_address``) and the algorithm here; runners elsewhere
  (``agl runner --server host:port --agent module:attr``);
- ``runner``: only the N runner processes, against ``server_address``.

Shutdown escalates: the stop signal (runners finish the attempts they hold), then SIGINT
(runners give their attempts up and leave), then SIGTERM, then SIGKILL, each after a timeout.
A runner that dies meanwhile (even by SIGKILL) loses nothing: the server sees its stream break
and its attempts go back to the queue per their retry policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Literal

from agl_core.client import GrpcStore
from agl_core.execution import departures, runner_process
from agl_core.execution.base import AlgorithmBundle, ExecutionStrategy, RunnerSpec
from agl_core.plugins import hookimpl
from agl_server.process import ServerProcess

logger = logging.getLogger(__name__)

Role = Literal["both", "algorithm", "runner"]


class ClientServerStrategy(ExecutionStrategy):
    """agl-server, runner processes and the algorithm (see the module documentation).

    :param n_runners: runner processes to start here (roles ``both`` and ``runner``).
    :param role: ``both``, ``algorithm`` or ``runner``.
    :param server_address: an agl-server to use instead of starting one (``host:port``).
    :param data_dir: the started server's data directory (default: a temporary one, removed at
        the end unless ``keep_data``).
    :param host: the interface the started server binds (``0.0.0.0`` to take remote runners).
    :param port: its port (0: a free one).
    :param server_args: further ``agl-server`` arguments (``["--durability", "nosync"]``).
    :param token: the bearer token of the server (given to the started one too, in its
        environment: a command line is readable by every user of the machine).
    :param graceful_timeout: seconds runners get to finish their attempts after the stop signal.
    :param terminate_timeout: seconds each further escalation step (SIGINT, SIGTERM, SIGKILL) waits.
    :param start_method: how runner processes start (``spawn``: a fresh interpreter that imports
        the agent by reference; ``fork``/``forkserver`` also work where the platform has them).
    :param runner_log_level: log level of the runner processes.
    :param runner_start_timeout: seconds the algorithm waits for the runners started here to
        connect before it starts anyway (with a warning). Waiting keeps runner start-up (a fresh
        interpreter importing the agent: seconds on a loaded machine) out of the algorithm's first
        deadlines; with role ``algorithm`` the runners are elsewhere and nothing is waited for.
    """

    name = "cs"

    def __init__(
        self,
        n_runners: int = 1,
        *,
        role: Role = "both",
        server_address: str | None = None,
        data_dir: str | Path | None = None,
        keep_data: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        server_args: Sequence[str] = (),
        token: str | None = None,
        graceful_timeout: float = 30.0,
        terminate_timeout: float = 5.0,
        start_method: str = "spawn",
        runner_log_level: str = "WARNING",
        runner_start_timeout: float = 120.0,
    ) -> None:
        if role not in ("both", "algorithm", "runner"):
            raise ValueError(f"role is {role!r}; use 'both', 'algorithm' or 'runner'")
        if role == "runner" and not server_address:
            raise ValueError("role 'runner' needs server_address (the agl-server the runners take work from)")
        if role != "algorithm" and n_runners < 1:
            raise ValueError(f"n_runners is {n_runners}; role {role!r} needs at least one runner")
        self.n_runners = n_runners
        self.role = role
        self.server_address = server_address
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.keep_data = keep_data
        self.host = host
        self.port = port
        self.server_args = list(server_args)
        self.token = token
        self.graceful_timeout = graceful_timeout
        self.terminate_timeout = terminate_timeout
        self.context = multiprocessing.get_context(start_method)
        self.runner_log_level = runner_log_level
        self.runner_start_timeout = runner_start_timeout
        self.server: ServerProcess | None = None
        self.processes: list[BaseProcess] = []
        self.worker_ids: list[str] = []  # the runner processes' worker ids on agl-server

    # --- the run -----------------------------------------------------------------------------------

    def execute(self, algorithm: AlgorithmBundle | None, runner: RunnerSpec, *, store: Any = None) -> Any:
        address, token = self.server_address, self.token
        if isinstance(store, GrpcStore):
            address, token = store.address, token or store.backend.config.token
        elif store is not None:
            raise TypeError(
                "the cs strategy keeps its store in agl-server; give no store, a GrpcStore of a running "
                "server, or "
                "strategy={'type': 'cs', 'server_address': 'host:port'}"
            )
        if self.role != "runner" and algorithm is None:
            raise ValueError(f"role {self.role!r} runs the algorithm; give it one")
        temporary: Path | None = None
        self.server, self.processes, self.worker_ids = None, [], []
        # The runners' stop signal: closing the write end stops them all (see agl_core.execution.events).
        stop_read, stop = self.context.Pipe(duplex=False)
        aborted = False
        try:
            if address is None:
                data_dir = self.data_dir
                if data_dir is None:
                    temporary = data_dir = Path(tempfile.mkdtemp(prefix="agl-cs-"))
                # The token goes by environment: a command line is readable by every user (/proc/PID/cmdline).
                env = {**os.environ, "AGL_TOKEN": token} if token else None
                self.server = ServerProcess(
                    data_dir, host=self.host, port=self.port, args=self.server_args, env=env
                ).start()
                address = self.server.address
                logger.info("agl-server serving on %s (data in %s)", address, data_dir)
            if self.role == "algorithm":
                logger.info(
                    "waiting for runners: start them with `agl runner --server %s --agent module:attribute`",
                    address,
                )
            else:
                self.processes, started = self._start_runners(runner, address, token, stop_read)
            stop_read.close()  # only the runners read it
            if self.role == "runner":
                return self._wait_runners()
            if self.processes:
                self._wait_runners_started(started)
            assert algorithm is not None
            return asyncio.run(self._run_algorithm(algorithm, address, token))
        except KeyboardInterrupt:
            # Ctrl-C reached the runners too (one process group): no point waiting for them to drain.
            aborted = True
            raise
        finally:
            self._stop_runners(stop, abort=aborted)
            if self.processes and address is not None and any(p.exitcode != 0 for p in self.processes):
                # A runner killed (or crashed) left its Work stream broken: the server must see
                # that before it stops, or it keeps the attempts running for a reconnect.
                departures.wait_killed_runners_gone(
                    address,
                    self.worker_ids,
                    token=token,
                )
            if self.server is not None:
                self.server.stop()
            if temporary is not None:
                if self.keep_data:
                    logger.info("the run's store is kept in %s", temporary)
                else:
                    shutil.rmtree(temporary, ignore_errors=True)

    def _start_runners(
        self, spec: RunnerSpec, address: str, token: str | None, stop: Any
    ) -> tuple[list[BaseProcess], dict[Connection, BaseProcess]]:
        """Start the runner processes; returns them and, per runner, the read end of the pipe on
        which it says it is connected (see :meth:`_wait_runners_started`)."""
        processes = []
        started: dict[Connection, BaseProcess] = {}
        for index in range(self.n_runners):
            config = runner_process.RunnerProcessConfig(
                spec=spec,
                server=address,
                index=index,
                token=token,
                log_level=self.runner_log_level,
                report_plugin_failures=spec.plugin_manager is None,
            )
            ready_read, ready = self.context.Pipe(duplex=False)
            process = self.context.Process(
                target=runner_process.main, args=(config, stop, ready), name=f"agl-runner-{index}", daemon=False
            )
            process.start()
            self.worker_ids.append(config.default_worker_id(process.pid))
            ready.close()  # the runner holds the write end: its exit reads as end of file here
            processes.append(process)
            started[ready_read] = process
        return processes, started

    def _wait_runners_started(self, started: dict[Connection, BaseProcess]) -> None:
        """Block until every runner started here has been welcomed by agl-server, or has exited
        (the supervision then reports it), or ``runner_start_timeout`` has passed."""
        deadline = time.monotonic() + self.runner_start_timeout
        waiting = dict(started)
        try:
            while waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    logger.warning(
                        "%d of %d runner(s) not connected to agl-server after %gs; the algorithm starts anyway",
                        len(waiting),
                        len(started),
                        self.runner_start_timeout,
                    )
                    return
                sentinels = {process.sentinel: conn for conn, process in waiting.items()}
                for ready in multiprocessing.connection.wait([*waiting, *sentinels], left):
                    # Readable means either the runner's word or the end of the pipe (it exited).
                    conn = sentinels.get(ready, ready)  # type: ignore[call-overload]
                    waiting.pop(conn, None)
        finally:
            for conn in started:
                conn.close()

    async def _run_algorithm(self, algorithm: AlgorithmBundle, address: str, token: str | None) -> Any:
        store = GrpcStore(address, token=token)
        try:
            await store.wait_ready(30.0)
            return await self._supervised(algorithm(store))
        finally:
            await store.close()

    async def _supervised(self, work: Any) -> Any:
        """Run the algorithm while watching the runner processes: one that dies is logged (its
        attempts are retried by the others); if all die while runners were expected, the
        algorithm is stopped with an error instead of waiting forever."""
        task = asyncio.ensure_future(work)
        if not self.processes:
            return await task
        loop = asyncio.get_running_loop()
        all_dead = asyncio.Event()
        wake_read, wake_write = os.pipe()
        watcher = threading.Thread(
            target=self._watch_processes,
            args=(loop, all_dead, wake_read),
            name="agl-runner-watch",
            daemon=True,
        )
        watcher.start()
        dead = asyncio.ensure_future(all_dead.wait())
        try:
            await asyncio.wait({task, dead}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            dead.cancel()
            os.write(wake_write, b"x")
            await asyncio.to_thread(watcher.join)
            os.close(wake_read)
            os.close(wake_write)
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        codes = ", ".join(f"{p.name}: {p.exitcode}" for p in self.processes)
        raise RuntimeError(f"every runner process exited before the algorithm finished ({codes}); see their logs above")

    def _watch_processes(self, loop: asyncio.AbstractEventLoop, all_dead: asyncio.Event, wake: int) -> None:
        alive = {p.sentinel: p for p in self.processes}
        while alive:
            ready = multiprocessing.connection.wait([*alive, wake])
            if wake in ready:
                return
            for sentinel in ready:
                process = alive.pop(sentinel)  # type: ignore[call-overload]
                process.join()
                logger.warning(
                    "runner %s (pid %s) exited with code %s while the algorithm runs; its attempts are "
                    "retried by the "
                    "other runners (%d left)",
                    process.name,
                    process.pid,
                    process.exitcode,
                    len(alive),
                )
        loop.call_soon_threadsafe(all_dead.set)

    def _wait_runners(self) -> None:
        """Role ``runner``: serve until the runners end (Ctrl-C stops them)."""
        for process in self.processes:
            process.join()

    # --- shutdown ----------------------------------------------------------------------------------

    def _stop_runners(self, stop: Any, *, abort: bool) -> None:
        """The stop signal, then SIGINT, then SIGTERM, then SIGKILL: each step only for the
        runners still alive after the previous one's timeout."""
        stop.close()
        if not self.processes:
            return
        steps: list[tuple[str, float, Any]] = [
            ("SIGINT", self.terminate_timeout, lambda p: os.kill(p.pid, signal.SIGINT)),
            ("SIGTERM", self.terminate_timeout, lambda p: p.terminate()),
            ("SIGKILL", self.terminate_timeout, lambda p: p.kill()),
        ]
        if not abort:
            _join_all(self.processes, self.graceful_timeout)
        for name, timeout, send in steps:
            alive = [p for p in self.processes if p.is_alive()]
            if not alive:
                break
            logger.warning(
                "%d runner(s) still running%s; sending %s",
                len(alive),
                "" if abort else f" {self.graceful_timeout:g}s after the stop signal",
                name,
            )
            for process in alive:
                with contextlib.suppress(ProcessLookupError):
                    send(process)
            _join_all(alive, timeout)
        for process in self.processes:
            if process.exitcode not in (0, None, runner_process.EXIT_ABORTED, -signal.SIGINT):
                logger.info("runner %s exited with code %s", process.name, process.exitcode)


def _join_all(processes: Sequence[BaseProcess], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))


@hookimpl
def agl_execution_strategies() -> dict[str, Any]:
    return {"cs": ClientServerStrategy}
