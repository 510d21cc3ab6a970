"""A runner in its own process, serving an agent against agl-server.

Used by the ``cs`` strategy (one child process per runner) and by ``agl runner`` (runners on any
machine that reaches agl-server). Work comes on the RunnerService Work stream; spans go to the
store's ingestion stream.

Stopping: the stop signal (the read end of a pipe the parent closes; see
:mod:`agl_core.execution.events`), or with ``graceful_signals`` a first SIGINT/SIGTERM, drains the
runner: no new work, the attempts it holds finish, then it leaves. SIGINT (or a second signal)
aborts it: attempts are given up at once (``unresponsive``: the retry policy decides).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from agl_core.client import GrpcStore
from agl_core.execution.base import RunnerSpec
from agl_core.execution.events import StopSignal, bridge

if TYPE_CHECKING:
    from agl_core.runner import RunnerStats

logger = logging.getLogger(__name__)

EXIT_ABORTED = 130


@dataclass
class RunnerProcessConfig:
    """Where one runner process gets its work from.

    :param server: agl-server's ``host:port``.
    :param index: the runner's number on this machine (part of its default worker id).
    :param poll_wait: long-poll DequeueRollout with this wait instead of using the Work stream.
    :param graceful_signals: a first SIGINT/SIGTERM drains (for ``agl runner``); otherwise SIGINT
        aborts and SIGTERM is left to its default.
    :param report_plugin_failures: log plugins that fail to load (off where the parent did).
    """

    spec: RunnerSpec
    server: str
    index: int = 0
    worker_id: str | None = None
    token: str | None = None
    tls: bool = False
    root_certificates: bytes | None = None
    poll_wait: float | None = None
    graceful_signals: bool = False
    log_level: str = "INFO"
    # Whether plugins that fail to load are logged here (the cs strategy has reported them already).
    report_plugin_failures: bool = True
    # Off where the runner is not its process's main thread (a Ray actor's thread): asyncio takes
    # signal handlers only there, and the host (Ray) owns the process's signals.
    handle_signals: bool = True

    def default_worker_id(self, pid: int | None = None) -> str:
        """The worker id: ``worker_id``, else one made of the index, host and process id (``pid``:
        the runner process's, known to its parent; default: this process)."""
        return self.worker_id or f"runner-{self.index}-{socket.gethostname()}-{pid or os.getpid()}"


async def serve(
    config: RunnerProcessConfig, stop_event: StopSignal | None = None, ready: Connection | None = None
) -> RunnerStats:
    """Run one runner against agl-server until stopped; returns what it did.

    :param ready: the write end of a pipe: a byte is written to it (and it is closed) once the
        server has welcomed the worker, so a parent can wait for its runners before handing out work.
    """
    # Imported here: the cs strategy (a plugin every agl process loads) imports this module for
    # its config and entry point; the runner, tracer and OpenTelemetry load in runner processes.
    from agl_core.runner import DequeueSource, WorkStreamSource
    from agl_core.trainer.components import build_tracer

    spec = config.spec
    pm = spec.get_plugin_manager(report_failures=config.report_plugin_failures)
    agent = spec.load_agent()
    tracer = build_tracer(spec.tracer, pm)
    tracer.init()
    store = GrpcStore(
        config.server, token=config.token, tls=config.tls, root_certificates=config.root_certificates
    ).with_namespace(spec.namespace)
    worker_id = config.default_worker_id()
    info = {"agent": getattr(agent, "name", type(agent).__name__), "runner_index": config.index}
    source: Any
    if config.poll_wait is None:
        source = WorkStreamSource(
            config.server,
            worker_id=worker_id,
            capacity=spec.capacity,
            heartbeat_interval=spec.heartbeat_interval,
            token=config.token,
            tls=config.tls,
            root_certificates=config.root_certificates,
            info=info,
            namespace=spec.namespace,
            queues=spec.queues,
            label_selector=spec.label_selector,
        )
    else:
        source = DequeueSource(
            store,
            worker_id=worker_id,
            capacity=spec.capacity,
            poll_wait=config.poll_wait,
            heartbeat_interval=spec.heartbeat_interval,
            info=info,
            queues=spec.queues,
            label_selector=spec.label_selector,
        )
    loop = asyncio.get_running_loop()
    stop = bridge(stop_event, loop) if stop_event is not None else asyncio.Event()
    runner = spec.build(agent=agent, store=store, source=source, tracer=tracer, pm=pm)
    task = asyncio.current_task()
    assert task is not None
    signals_seen = 0

    def on_signal(sig: signal.Signals) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if config.graceful_signals and signals_seen == 1:
            logger.info("%s: finishing the attempts in hand, then leaving (signal again to abort)", sig.name)
            stop.set()
        else:
            logger.info("%s: aborting; attempts in hand are given up and retried elsewhere", sig.name)
            task.cancel()

    handled = [signal.SIGINT, signal.SIGTERM] if config.graceful_signals else [signal.SIGINT]
    if not config.handle_signals:
        handled = []
    for sig in handled:
        loop.add_signal_handler(sig, on_signal, sig)
    logger.info("runner %s serving %s on %s (capacity %d)", worker_id, info["agent"], config.server, spec.capacity)
    try:
        stats = await runner.run(stop, on_started=None if ready is None else lambda: _say_ready(ready))
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await store.close()
        tracer.teardown()
    logger.info(
        "runner %s done: %d attempts (%d succeeded, %d failed)",
        worker_id,
        stats.started,
        stats.succeeded,
        stats.failed,
    )
    return stats


def _say_ready(ready: Connection) -> None:
    try:
        ready.send_bytes(b"ready")
    except OSError:  # the parent stopped listening: nothing to tell
        pass
    finally:
        ready.close()


def main(config: RunnerProcessConfig, stop_event: StopSignal | None = None, ready: Connection | None = None) -> None:
    """Process entry point (``multiprocessing.Process(target=main, ...)``)."""
    logging.basicConfig(
        level=config.log_level.upper(),
        format=f"%(asctime)s %(levelname)-7s runner-{config.index}: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(serve(config, stop_event, ready))
    except asyncio.CancelledError:
        sys.exit(EXIT_ABORTED)
    except KeyboardInterrupt:
        sys.exit(EXIT_ABORTED)
