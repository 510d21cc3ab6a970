"""The single writer of an LMDB environment, with group commit.

LMDB allows one write transaction at a time. Every change to the store is an *operation*: a
function of a write transaction. Operations from all callers (every stream, every RPC) queue up
here; one thread takes everything queued, runs it in one transaction, commits once (one fsync
for the whole group) and only then resolves the callers' futures. An operation that fails leaves
no partial writes and does not disturb the rest of its group.

Operations almost never fail, so a group first runs them all straight in its transaction. If one
raises, the whole transaction is rolled back and the group runs again with each operation in a
nested transaction of its own, which rolls back only the one that fails. The nested transactions
are not paid up front because they cost the writer about a tenth of its CPU on the span path (each
copies every page its operation touches that the group had already changed). After a failure the
next groups take the nested way straight away for a while, so that a workload whose operations
often fail does not run its groups twice.

When the map is full the group is aborted, the map is doubled on the event loop thread (where
no read transaction can be open at that moment, since reads never span an ``await``) and the
group runs again.

A lone stream's writes run on the event loop itself. When a write comes from the same source
(a stream with nothing else in flight) as the write before it, the writer is idle, nothing is
queued and every earlier group has been delivered, it runs and commits at once on the calling
thread, a group of one, and is delivered before ``submit`` returns. Such a stream's writes gain
nothing from group commit, and the hand-over to the writer thread and back cost two thread wake-ups
on the core the server's Python threads share: about a sixth of one closed-loop span writer's ack
(docs/span-acks.md). Any other write in between, a second stream, or a stream with a write in flight
sends the next write the usual way, so concurrent writers still share group commits. The loop is
busy for that one commit (py-lmdb releases the GIL for its syncs, but the loop thread waits in
them); ``inline=False`` turns it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import lmdb

from agl_core.errors import AglError, InternalError, ResourceExhaustedError

logger = logging.getLogger(__name__)

E = TypeVar("E")
Op = Callable[[lmdb.Transaction, Any], Any]

MAX_GROUP = 4096
MAX_MAP_SIZE = 1 << 40
# Groups run with a nested transaction per operation after one whose operation failed.
NESTED_AFTER_FAILURE = 64
INLINE_ENV = "AGL_INLINE_COMMITS"


def inline_setting(value: bool | None = None) -> bool:
    """Whether a lone source's writes run on the event loop: ``value``, else ``$AGL_INLINE_COMMITS``
    (``on``, the default, or ``off``). ValueError says what to give instead."""
    if value is not None:
        return value
    given = os.environ.get(INLINE_ENV, "on")
    if given not in ("on", "off"):
        raise ValueError(
            f"{INLINE_ENV}={given!r}: give 'on' (a lone stream's writes commit on the event loop) or 'off' "
            "(every write goes through the store's writer thread)"
        )
    return given == "on"


class _OperationFailed(Exception):
    """An operation raised in a group run without nested transactions: run it again with them."""


class Writer(Generic[E]):
    """Runs write operations on one thread in groups.

    :param effects_factory: makes the per-operation object an operation records its side effects
        in (events to publish, waiters to wake); those of successful operations are handed to
        ``on_commit`` on the event loop after the commit, before any caller resumes.
    """

    def __init__(
        self,
        env: lmdb.Environment,
        loop: asyncio.AbstractEventLoop,
        effects_factory: Callable[[], E],
        on_commit: Callable[[list[E]], None],
        name: str = "agl-lmdb-writer",
        on_abort: Callable[[], None] = lambda: None,
        pause_readers: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
        observers: list[Callable[[int, float, float], None]] | None = None,
        inline: bool = True,
    ) -> None:
        """:param on_abort: called on the writer thread whenever writes are rolled back (an operation
        failed, or a whole group), so caches of what is on disk can be dropped.
        :param pause_readers: held while the map grows: waits for read transactions running off the
            event loop to end and holds new ones back (those on the loop cannot be open then).
        :param observers: called after each group, on the thread that ran it, with its number of
            operations, the seconds it took to run and commit, and of those the seconds the commit
            itself took (writing the pages and, when durable, syncing them: agl-server's metrics); a
            list the owner may add to later.
        :param inline: run a lone source's writes on the calling thread (see the module's doc)."""
        self._pause_readers = pause_readers
        self._env = env
        self._loop = loop
        self._effects_factory = effects_factory
        self._on_commit = on_commit
        self._on_abort = on_abort
        self._observers = observers if observers is not None else []
        self._pending: deque[tuple[Op, asyncio.Future[Any]]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.groups = 0
        self.ops = 0
        self.reruns = 0  # groups run again with nested transactions because an operation failed
        self._nested_until = 0  # self.groups below which groups go the nested way straight away
        self._inline = inline
        self._last_source: object = None
        # Groups the writer thread has taken and those delivered on the loop: equal when no group
        # is running or waiting for its delivery, which an inline write must not overtake (effects
        # are published in commit order).
        self._taken = 0
        self._delivered = 0
        self.inline_groups = 0  # groups run on the calling thread
        self._thread.start()

    def submit(self, op: Op, source: object = None) -> asyncio.Future[Any]:
        """Queue ``op``; the future resolves with its result once the group it ran in is durable.

        Must be called on the event loop thread.

        :param source: a token of the caller's stream, given only while that stream has no other
            write in flight; a lone source's write may run at once on this thread (see the module's
            doc), its future then done when this returns.
        """
        future = self._loop.create_future()
        with self._cond:
            if self._closing:
                raise ResourceExhaustedError("the store is closing; no more writes are accepted")
            inline = (
                self._inline
                and source is not None
                and source is self._last_source
                and not self._pending
                and self._taken == self._delivered
            )
            self._last_source = source
            if not inline:
                self._pending.append((op, future))
                self._cond.notify()
        if inline:
            self._run_inline(op, future)
        return future

    def _run_inline(self, op: Op, future: asyncio.Future[Any]) -> None:
        """Run ``op`` as a group of its own on this thread and deliver it. The writer thread cannot
        start a group meanwhile: only this thread queues writes, and it is busy here."""
        group = [(op, future)]
        started = time.perf_counter()
        try:
            outcomes, effects, flush = self._execute(group)
        except Exception:
            # The map is full or the commit failed: the writer thread deals with both as always
            # (it grows the map through this loop, which must not be waiting in a write then).
            self._on_abort()
            with self._cond:
                self._pending.append((op, future))
                self._cond.notify()
            return
        self.inline_groups += 1
        self._count(group, started, flush)
        self._deliver(group, outcomes, effects)

    def close(self) -> None:
        """Run what is queued, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    # --- writer thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                count = min(len(self._pending), MAX_GROUP)
                group = [self._pending.popleft() for _ in range(count)]
                self._taken += 1
            self._run_group(group)

    def _run_group(self, group: list[tuple[Op, asyncio.Future[Any]]]) -> None:
        started = time.perf_counter()
        flush = 0.0
        while True:
            try:
                outcomes, effects, flush = self._execute(group)
                break
            except lmdb.MapFullError:
                self._on_abort()
                if not self._grow_map():
                    error = ResourceExhaustedError(
                        f"the store's data file reached its largest map size ({MAX_MAP_SIZE} bytes); free disk "
                        "space or move the data directory"
                    )
                    outcomes, effects = [(False, error)] * len(group), []
                    break
            except Exception as exc:  # the commit itself failed (disk full, I/O error)
                self._on_abort()
                logger.exception("LMDB commit failed")
                error = InternalError(f"the store could not commit a write: {exc}; check the data directory's disk")
                outcomes, effects = [(False, error)] * len(group), []
                break
        self._count(group, started, flush)
        try:
            self._loop.call_soon_threadsafe(self._delivered_from_thread, group, outcomes, effects)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    def _count(self, group: list[tuple[Op, asyncio.Future[Any]]], started: float, flush: float) -> None:
        self.groups += 1
        self.ops += len(group)
        if self._observers:
            elapsed = time.perf_counter() - started
            for observe in self._observers:
                try:
                    observe(len(group), elapsed, flush)
                except Exception:
                    logger.exception("a commit observer failed")

    def _execute(self, group: list[tuple[Op, asyncio.Future[Any]]]) -> tuple[list[tuple[bool, Any]], list[E], float]:
        """Run the group in one transaction and commit it: the outcomes, the effects of the operations
        that succeeded, and the seconds the commit took."""
        if self.groups >= self._nested_until:
            try:
                return self._run_and_commit(group, nested=False)
            except _OperationFailed:
                self._on_abort()  # what the rolled-back operations put in caches is not on disk
                self.reruns += 1
                self._nested_until = self.groups + NESTED_AFTER_FAILURE
        return self._run_and_commit(group, nested=True)

    def _run_and_commit(
        self, group: list[tuple[Op, asyncio.Future[Any]]], nested: bool
    ) -> tuple[list[tuple[bool, Any]], list[E], float]:
        """``nested``: each operation in a transaction of its own inside the group's, so that one that
        fails is rolled back alone; without, the first failure raises _OperationFailed, the group's
        transaction rolled back."""
        outcomes: list[tuple[bool, Any]] = []
        effects: list[E] = []
        txn = self._env.begin(write=True)
        try:
            for op, future in group:
                if future.cancelled():
                    # The caller gave up before the write started; nothing to do. A caller that gives up
                    # after this point still gets its write applied (as with any RPC past the wire).
                    outcomes.append((False, None))
                    continue
                op_effects = self._effects_factory()
                try:
                    if nested:
                        with self._env.begin(write=True, parent=txn) as child:
                            result = op(child, op_effects)
                    else:
                        result = op(txn, op_effects)
                except lmdb.MapFullError:
                    raise
                except Exception as exc:
                    if not nested:
                        raise _OperationFailed from exc
                    self._on_abort()
                    if isinstance(exc, AglError):
                        outcomes.append((False, exc))
                    else:
                        logger.exception("store operation failed")
                        outcomes.append((False, InternalError(f"store operation failed: {type(exc).__name__}: {exc}")))
                    continue
                outcomes.append((True, result))
                effects.append(op_effects)
        except BaseException:
            txn.abort()
            raise
        committing = time.perf_counter()
        txn.commit()
        return outcomes, effects, time.perf_counter() - committing

    def _grow_map(self) -> bool:
        size = self._env.info()["map_size"]
        if size >= MAX_MAP_SIZE:
            return False
        new_size = min(size * 2, MAX_MAP_SIZE)
        done = threading.Event()
        failure: list[BaseException] = []

        def grow() -> None:
            try:
                with self._pause_readers():
                    self._env.set_mapsize(new_size)
            except BaseException as exc:  # pragma: no cover - reported to the writer thread
                failure.append(exc)
            finally:
                done.set()

        try:
            self._loop.call_soon_threadsafe(grow)
        except RuntimeError:
            with self._pause_readers():
                self._env.set_mapsize(new_size)  # the loop is gone
            return True
        done.wait()
        if failure:
            logger.error("could not grow the LMDB map to %d bytes: %s", new_size, failure[0])
            return False
        logger.info("grew the LMDB map from %d to %d bytes", size, new_size)
        return True

    # --- event loop thread -------------------------------------------------------------------------

    def _delivered_from_thread(
        self, group: list[tuple[Op, asyncio.Future[Any]]], outcomes: list[tuple[bool, Any]], effects: list[E]
    ) -> None:
        try:
            self._deliver(group, outcomes, effects)
        finally:
            self._delivered += 1

    def _deliver(
        self, group: list[tuple[Op, asyncio.Future[Any]]], outcomes: list[tuple[bool, Any]], effects: list[E]
    ) -> None:
        if effects:
            try:
                self._on_commit(effects)
            except Exception:
                logger.exception("publishing the effects of a commit failed")
        for (_, future), (ok, value) in zip(group, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            elif value is not None:
                future.set_exception(value)
            else:
                future.cancel()
