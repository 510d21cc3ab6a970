"""The ``shm`` execution strategy: everything in one process.

The store (embedded LMDB, in a temporary or given directory) lives on its own event loop in a
thread, and so does the algorithm; every runner runs in a thread of its own with its own event
loop and reaches the store through a :class:`~agl_core.store.ThreadSafeStore`. Good for
development, debugging and agents that are cheap to run; for agents that hold the GIL, use
``cs`` (runner processes).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agl_core.execution.base import AlgorithmBundle, ExecutionStrategy, RunnerSpec
from agl_core.execution.events import bridge
from agl_core.plugins import AglPluginManager, hookimpl
from agl_core.store import LightningStore, LmdbStore, SyncStore, ThreadSafeStore

if TYPE_CHECKING:
    from agl_core.runner import RunnerStats

logger = logging.getLogger(__name__)


class SharedMemoryStrategy(ExecutionStrategy):
    """Algorithm and runners as threads of this process, over an embedded store.

    :param n_runners: runner threads.
    :param data_dir: the LMDB directory (default: a temporary one, removed at the end).
    :param keep_data: keep a temporary ``data_dir`` (it is logged) instead of removing it.
    :param join_timeout: seconds runner threads get to finish their attempts once the algorithm is done.
    """

    name = "shm"

    def __init__(
        self,
        n_runners: int = 1,
        *,
        data_dir: str | Path | None = None,
        keep_data: bool = False,
        join_timeout: float = 30.0,
    ) -> None:
        if n_runners < 1:
            raise ValueError(f"n_runners is {n_runners}; the shm strategy needs at least one runner")
        self.n_runners = n_runners
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.keep_data = keep_data
        self.join_timeout = join_timeout

    def _open_store(self, store: Any, pm: AglPluginManager) -> tuple[Any, Path | None]:
        """The store to use, and the temporary directory to remove afterwards (if any)."""
        if isinstance(store, LightningStore):
            return store, None
        if store is None or isinstance(store, (str, Mapping)):
            options = dict(store) if isinstance(store, Mapping) else {"type": store or "lmdb"}
            name = options.pop("type", "lmdb")
            path = options.pop("path", None) or self.data_dir
            temporary = None
            if path is None:
                temporary = Path(tempfile.mkdtemp(prefix="agl-shm-"))
                path = temporary
            if name == "lmdb" and not options:
                return LmdbStore(path), temporary
            backend = pm.lookup("store_backends", name).factory(str(path), **options)
            return LightningStore(backend), temporary
        raise TypeError(
            f"the shm strategy takes a LightningStore, a store backend name or dict, not {type(store).__name__}"
        )

    def execute(self, algorithm: AlgorithmBundle | None, runner: RunnerSpec, *, store: Any = None) -> Any:
        if algorithm is None:
            raise ValueError("the shm strategy runs the algorithm and the runners together; give it an algorithm")
        # Imported here: every agl process imports this plugin module; the runner and the tracer
        # (emitters, OpenTelemetry) load only where the strategy runs.
        from agl_core.runner import DequeueSource
        from agl_core.trainer.components import build_tracer

        pm = runner.get_plugin_manager()
        opened, temporary = self._open_store(store, pm)
        # The store's own loop thread: algorithm and runners all reach it from there.
        sync = SyncStore(opened)
        store_loop: asyncio.AbstractEventLoop = sync._loop  # the loop SyncStore runs the store on
        asyncio.run_coroutine_threadsafe(_bind(opened), store_loop).result()
        agent = runner.load_agent()
        tracer = build_tracer(runner.tracer, pm)
        tracer.init()
        stop = threading.Event()
        results: list[RunnerStats | BaseException | None] = [None] * self.n_runners
        aborts: list[tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = []

        def run_runner(index: int) -> None:
            async def serve() -> RunnerStats:
                task = asyncio.current_task()
                assert task is not None
                aborts.append((asyncio.get_running_loop(), task))
                threadsafe = ThreadSafeStore(opened.with_namespace(runner.namespace), loop=store_loop)
                source = DequeueSource(
                    threadsafe,
                    # The namespace in the id: two trainers sharing one agl-server keep apart workers.
                    worker_id=f"runner-{index}"
                    if runner.namespace in ("", "default")
                    else f"{runner.namespace}-runner-{index}",
                    capacity=runner.capacity,
                    heartbeat_interval=runner.heartbeat_interval,
                    info={"agent": agent.name, "runner_index": index},
                    queues=runner.queues,
                    label_selector=runner.label_selector,
                )
                built = runner.build(agent=agent, store=threadsafe, source=source, tracer=tracer, pm=pm)
                return await built.run(bridge(stop))

            try:
                results[index] = asyncio.run(serve())
            except BaseException as exc:
                results[index] = exc
                if not isinstance(exc, asyncio.CancelledError):
                    logger.exception("runner %d failed", index)

        threads = [
            threading.Thread(target=run_runner, args=(i,), name=f"agl-runner-{i}", daemon=True)
            for i in range(self.n_runners)
        ]
        for thread in threads:
            thread.start()
        future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(
            _supervised(algorithm(opened), threads), store_loop
        )
        try:
            result = future.result()
        except BaseException:
            # Ctrl-C or a failed algorithm: runners give their attempts up instead of finishing them.
            future.cancel()
            for loop, task in aborts:
                if not loop.is_closed():
                    loop.call_soon_threadsafe(task.cancel)
            raise
        finally:
            stop.set()
            for thread in threads:
                thread.join(self.join_timeout)
            stuck = [t.name for t in threads if t.is_alive()]
            if stuck:
                logger.error("runner threads %s did not stop within %.0fs", ", ".join(stuck), self.join_timeout)
            tracer.teardown()
            sync.close()
            if temporary is not None:
                if self.keep_data:
                    logger.info("the run's store is kept in %s", temporary)
                else:
                    shutil.rmtree(temporary, ignore_errors=True)
        return result


async def _bind(store: Any) -> None:
    """Bind the store to the loop this runs on (an embedded store binds on its first write)."""
    start = getattr(store.backend, "start", None)
    if start is not None:
        await start()
    await store.stats()


async def _supervised(algorithm: Any, threads: list[threading.Thread]) -> Any:
    """Run the algorithm; fail it if every runner thread has died (nothing would run its rollouts)."""
    task = asyncio.ensure_future(algorithm)
    watcher = asyncio.ensure_future(asyncio.to_thread(_join_all, threads))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done() and watcher.done():
            task.cancel()
    if task.done():
        watcher.cancel()
        return task.result()
    raise RuntimeError("every runner thread stopped before the algorithm finished; see the errors logged above")


def _join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join()


@hookimpl
def agl_execution_strategies() -> dict[str, Any]:
    return {"shm": SharedMemoryStrategy}
