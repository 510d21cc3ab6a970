"""The core of the LMDB store backend: the environment, the single writer, read transactions,
what happens after each commit (waking waiters, arming the watchdog), and the watchdog itself.

The calls of the store live in one mixin per concern (``queueing``, ``lifecycle``, ``resources``,
``spans``, ``waiting``, ``workers``, ``stats``); :class:`~agl_core.store.lmdb.backend.LmdbBackend`
combines them. Each mixin reaches the store only through what this class provides.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import lmdb

from agl_core.errors import FailedPreconditionError
from agl_core.store import rules
from agl_core.store.lmdb import dispatch, expiry, rollout_index, span_path
from agl_core.store.lmdb.reads import ReadGate, ReadTransaction, begin_read, read_pool
from agl_core.store.lmdb.records import Effects, Tx
from agl_core.store.lmdb.resident import ResidentTrimmer
from agl_core.store.lmdb.schema import open_environment
from agl_core.store.lmdb.span_chunks import ChunkNumbers
from agl_core.store.lmdb.span_ids import DEFAULT_BUDGET_BYTES as DEFAULT_SPAN_ID_FILTER_BUDGET
from agl_core.store.lmdb.span_ids import SpanIdIndex
from agl_core.store.lmdb.watchdog import Watchdog
from agl_core.store.lmdb.writer import Writer, inline_setting

logger = logging.getLogger(__name__)

DEFAULT_MAP_SIZE = 1 << 30
DEFAULT_RESIDENT_BUDGET = 256 << 20
RESIDENT_CHECK_SECONDS = 0.5
WATCHDOG_RETRY_SECONDS = 1.0


Listener = Callable[[list[Effects]], None]
_WRONG_LOOP = (
    "this LmdbStore is bound to the event loop it was first used on; from other threads or event loops use "
    "agl_core.SyncStore(store) (blocking calls) or agl_core.ThreadSafeStore(store) (coroutines)"
)


def default_data_dir() -> str:
    return os.environ.get("AGL_DATA_DIR", "./.agl-data")


class LmdbCore:
    """State and plumbing shared by every part of :class:`~agl_core.store.lmdb.backend.LmdbBackend`."""

    name = "lmdb"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        sync: bool = True,
        resident_budget: int = DEFAULT_RESIDENT_BUDGET,
        span_id_filter_budget: int = DEFAULT_SPAN_ID_FILTER_BUDGET,
        span_loop: str | None = None,
        inline_commits: bool | None = None,
    ):
        # The writer's span loop: compiled where built, else Python (span_path; AGL_SPAN_LOOP).
        # Chosen first, with the writer's inline commits: a bad choice opens (creates) nothing.
        self.span_loop, self._span_ingest = span_path.choose(span_loop)
        self.inline_commits = inline_setting(inline_commits)
        self.path = os.fspath(path) if path is not None else default_data_dir()
        self.env, self.dbs = open_environment(self.path, map_size=map_size, sync=sync)
        self.page_size: int = self.env.stat()["psize"]
        rollout_index.ensure(self.env, self.dbs)
        self._dispatch = dispatch.rebuild(self.env, self.dbs)
        self._read_gate = ReadGate()
        self._read_pool = read_pool()
        self.sync = sync
        self.resident = ResidentTrimmer(os.path.join(self.path, "data.mdb"), resident_budget)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: Writer[Effects] | None = None
        self._watchdog: Watchdog | None = None
        self._queue_changed = asyncio.Event()
        self._events_changed = asyncio.Event()
        self._terminal_waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._listeners: list[Listener] = []
        self._commit_observers: list[Callable[[int, float, float], None]] = []
        # Used only by the thread running a write group (the writer's, or the loop's for an inline
        # commit; never both at once, see writer.py).
        self._span_ids = SpanIdIndex(
            budget_bits=span_id_filter_budget * 8,
            add_all=span_path.filter_fill(self.span_loop),
            append=span_path.log_append(self.span_loop),
        )
        self._chunk_numbers = ChunkNumbers()
        self._closed = False
        self.start_time = time.time()

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def _ensure_started(self) -> Writer[Effects]:
        if self._closed:
            raise FailedPreconditionError(f"the store at {self.path!r} is closed")
        loop = asyncio.get_running_loop()
        if self._writer is not None:
            if loop is not self._loop:
                raise RuntimeError(_WRONG_LOOP)
            return self._writer
        self._loop = loop
        # Events made before the loop existed are rebound to it lazily by asyncio; replace them anyway
        # so no waiter from an earlier loop lingers.
        self._queue_changed = asyncio.Event()
        self._events_changed = asyncio.Event()
        self._writer = Writer(
            self.env,
            loop,
            Effects,
            self._on_commit,
            on_abort=self._on_abort,
            pause_readers=self._read_gate.exclusive,
            observers=self._commit_observers,
            inline=self.inline_commits,
        )
        self._watchdog = Watchdog(loop, self._expire)
        self._rearm_watchdog()
        if self.resident.active:
            loop.call_later(RESIDENT_CHECK_SECONDS, self._trim_resident)
        return self._writer

    def _trim_resident(self) -> None:
        if self._closed or self._loop is None:
            return
        self.resident.maybe_trim()
        self._loop.call_later(RESIDENT_CHECK_SECONDS, self._trim_resident)

    async def start(self) -> None:
        """Bind to the running loop and start the writer and watchdog (done lazily otherwise)."""
        self._ensure_started()

    async def close(self) -> None:
        """Finish queued writes, wake every waiter and close the environment."""
        if self._closed:
            return
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.close()
        if self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._writer.close)
            # Let the final group's results reach their callers before the environment goes away.
            await asyncio.sleep(0)
        for waiters in self._terminal_waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        self._queue_changed.set()
        self._events_changed.set()
        await asyncio.get_running_loop().run_in_executor(None, self._close_env)

    def _close_env(self) -> None:
        with self._read_gate.exclusive():  # no pooled read may be inside the environment
            self.env.close()
        self._read_pool.shutdown(wait=False)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` on the event loop with the effects of every commit (events, span counts)."""
        self._listeners.append(listener)

    def add_commit_observer(self, observer: Callable[[int, float, float], None]) -> None:
        """Call ``observer(operations, seconds, commit_seconds)`` after each group commit, on the thread
        that ran the group: its size, the seconds it took to run and commit, and of those the commit's."""
        self._commit_observers.append(observer)

    @property
    def writer_counts(self) -> tuple[int, int]:
        """(groups, operations) committed by the writer so far."""
        writer = self._writer
        return (writer.groups, writer.ops) if writer is not None else (0, 0)

    @property
    def writer_inline_groups(self) -> int:
        """Groups committed on the event loop: a lone stream's writes (see ``writer.py``)."""
        writer = self._writer
        return writer.inline_groups if writer is not None else 0

    @property
    def writer_reruns(self) -> int:
        """Groups run a second time, with a nested transaction per operation, because one failed."""
        writer = self._writer
        return writer.reruns if writer is not None else 0

    @property
    def span_id_index(self) -> SpanIdIndex:
        """The writer's span-id index, for its counters (/metrics); only the thread running writes changes it."""
        return self._span_ids

    def _write(self, op: Callable[[Tx], Any], source: object = None) -> asyncio.Future[Any]:
        """``op`` queued for the writer; ``source``: see :meth:`Writer.submit`."""
        return self._ensure_started().submit(self._operation(op), source)

    def _operation(self, op: Callable[[Tx], Any]) -> Callable[[lmdb.Transaction, Effects], Any]:
        """``op`` as the writer runs it: on a :class:`Tx` over the group's transaction, flushed after."""

        def run(txn: lmdb.Transaction, effects: Effects) -> Any:
            tx = Tx(txn, self.dbs, effects, time.time_ns())
            result = op(tx)
            tx.flush()
            return result

        return run

    def _begin(self) -> ReadTransaction:
        """A read transaction. Use it in a ``with`` block that holds no ``await``: reads never span a
        suspension, which is what lets the writer grow the map from the loop thread."""
        if self._closed:
            raise FailedPreconditionError(f"the store at {self.path!r} is closed")
        if self._loop is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not self._loop:
                raise RuntimeError(_WRONG_LOOP)
        return begin_read(self.env)

    async def _read(self, fn: Callable[[lmdb.Transaction], Any]) -> Any:
        """Run ``fn`` in a read transaction on the read pool: for reads that can take long, so the
        event loop keeps serving everyone else meanwhile."""
        if self._closed:
            raise FailedPreconditionError(f"the store at {self.path!r} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._read_pool, self._pooled_read, fn)

    def _pooled_read(self, fn: Callable[[lmdb.Transaction], Any]) -> Any:
        with self._read_gate.reading():
            if self._closed:
                raise FailedPreconditionError(f"the store at {self.path!r} is closed")
            with begin_read(self.env) as txn:
                return fn(txn)

    def _on_abort(self) -> None:
        """On the thread running the writes (the writer's, or the loop's), whenever they are rolled back."""
        self._span_ids.discard_pending()
        self._dispatch.restore()

    def _on_commit(self, effects: list[Effects]) -> None:
        enqueued = False
        events = False
        for effect in effects:
            # Before anyone is woken: a woken dispatcher must find what was queued.
            self._dispatch.confirm(effect.popped)
            for entry in effect.queued:
                self._dispatch.push(*entry)
            enqueued = enqueued or effect.enqueued > 0
            if effect.events:
                events = True
                for event in effect.events:
                    if event.new_status in rules.TERMINAL_ROLLOUT:
                        for waiter in self._terminal_waiters.pop(event.rollout_id, ()):
                            if not waiter.done():
                                waiter.set_result(None)
            if self._watchdog is not None:
                for deadline, num, seq in effect.watch:
                    self._watchdog.arm(deadline, num, seq)
        if enqueued:
            self._queue_changed.set()
            self._queue_changed = asyncio.Event()
        if events:
            self._events_changed.set()
            self._events_changed = asyncio.Event()
        for listener in self._listeners:
            try:
                listener(effects)
            except Exception:
                logger.exception("a store listener failed")

    # --- watchdog ----------------------------------------------------------------------------------

    def _rearm_watchdog(self) -> None:
        """After a restart, re-arm the deadlines of every active attempt found on disk."""
        assert self._watchdog is not None
        with self._begin() as txn:
            armed, skipped = expiry.rearm(txn, self.dbs, self._watchdog)
        if armed:
            logger.info("watchdog re-armed %d active attempts", armed)
        if skipped:
            logger.error("watchdog: %d active rollout(s) could not be read and are not watched (see above)", skipped)

    def _expire(self, due: list[tuple[int, int]]) -> None:
        if self._closed:
            return
        future = self._write(expiry.expire_op(self.env, self.dbs, due))

        def done(future: asyncio.Future[Any]) -> None:
            if future.cancelled() or future.exception() is None or self._closed or self._watchdog is None:
                return
            # The whole write failed (the commit itself): look at these attempts again a little later
            # rather than forget them.
            logger.error("watchdog write failed, retrying in %gs: %s", WATCHDOG_RETRY_SECONDS, future.exception())
            retry_at = time.time() + WATCHDOG_RETRY_SECONDS
            for num, seq in due:
                self._watchdog.arm(retry_at, num, seq)

        future.add_done_callback(done)


def log_failure(what: str) -> Callable[[asyncio.Future[Any]], None]:
    def callback(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.error("%s write failed: %s", what, future.exception())

    return callback
