"""Getting finished spans from agent threads to the store: :class:`SpanSink` and :class:`TraceCollector`.

Spans end wherever the agent runs (threads, event loops); the store lives on one event loop.
A :class:`SpanSink` per store takes spans from any thread into a bounded queue and, on the store's
loop, hands them to ``store.add_spans`` in batches with a few batches in flight (for
:class:`~agl_core.client.GrpcStore` that feeds its batching, acknowledged stream; for
:class:`~agl_core.store.LmdbStore` its group commit). A thread that finds the queue full waits
(back-pressure); the queue never grows past its limit except for spans ended on the store's own
loop thread, which cannot wait without stalling the very loop that drains the queue: those are
held until ``hard_limit_factor`` times the limit and dropped (counted and reported) beyond it.

A :class:`TraceCollector` is one trace context: it keeps its spans and counts which of them the
store has acknowledged, so the context can exit exactly when all of them are durable.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agl_core.errors import AglError, UnavailableError, error_for_code
from agl_core.proto.trace_pb2 import Span

logger = logging.getLogger(__name__)


@dataclass
class DeliveryStats:
    """What happened to the spans of one trace context.

    :ivar spans: spans that ended inside the context.
    :ivar delivered: spans the store acknowledged (stored now or earlier: duplicates count).
    :ivar rejected: ``(span, error)`` for spans the store refused (e.g. an unknown rollout).
    :ivar failed: spans that could not be delivered at all (the store stayed unreachable).
    :ivar dropped: spans dropped because the queue was past its hard limit.
    """

    spans: int = 0
    delivered: int = 0
    rejected: list[tuple[Span, AglError]] = field(default_factory=list)
    failed: int = 0
    dropped: int = 0
    error: AglError | None = None


class TraceCollector:
    """The spans of one trace context, and their delivery.

    :ivar rollout_id: the rollout every span of the context belongs to.
    :ivar attempt_id: the attempt every span of the context belongs to.
    :ivar spans: the finished spans, in the order they ended (kept unless ``keep_spans`` is off).
    """

    def __init__(
        self, name: str, rollout_id: str, attempt_id: str, sink: SpanSink | None, *, keep_spans: bool = True
    ) -> None:
        self.name = name
        self.rollout_id = rollout_id
        self.attempt_id = attempt_id
        self.sink = sink
        self.keep_spans = keep_spans
        self.spans: list[Span] = []
        self.stats = DeliveryStats()
        self.trace_id = 0
        # The OpenTelemetry tracer emitters and instrumentations start their spans with.
        self.otel_tracer: Any = None
        self._lock = threading.Lock()
        self._outstanding = 0
        self._closed = False
        self._done = threading.Event()
        self._done_callbacks: list[Callable[[], None]] = []

    # --- producer side (agent threads) ------------------------------------------------------------

    def add(self, span: Span) -> None:
        with self._lock:
            self.stats.spans += 1
            if self.keep_spans:
                self.spans.append(span)
            if self.sink is not None:
                self._outstanding += 1
        if self.sink is None:
            return
        try:
            if not self.sink.put(span, self):
                self._settle(dropped=1)
        except AglError as exc:
            self._settle(failed=1, error=exc)

    # --- consumer side (the store's loop) ---------------------------------------------------------

    def _settle(
        self,
        *,
        delivered: int = 0,
        rejected: list[tuple[Span, AglError]] | None = None,
        failed: int = 0,
        dropped: int = 0,
        error: AglError | None = None,
    ) -> None:
        with self._lock:
            self.stats.delivered += delivered
            self.stats.failed += failed
            self.stats.dropped += dropped
            if rejected:
                self.stats.rejected.extend(rejected)
            if error is not None and self.stats.error is None:
                self.stats.error = error
            self._outstanding -= delivered + len(rejected or ()) + failed + dropped
            finished = self._closed and self._outstanding <= 0
        if finished:
            self._finish()

    # --- waiting for delivery ---------------------------------------------------------------------

    def close(self) -> None:
        """No more spans are expected; waiters wake once the outstanding ones are settled."""
        with self._lock:
            self._closed = True
            finished = self._outstanding <= 0
        if finished:
            self._finish()

    def _finish(self) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self._done.set()
            callbacks, self._done_callbacks = self._done_callbacks, []
        for callback in callbacks:
            callback()

    def wait_delivered_sync(self, timeout: float | None = None) -> bool:
        """Block until every span is settled; False if ``timeout`` passed first."""
        return self._done.wait(timeout)

    async def wait_delivered(self) -> None:
        """Wait (from any event loop) until every span is settled."""
        if self._done.is_set():
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(None))

        with self._lock:
            if not self._done.is_set():
                self._done_callbacks.append(wake)
                registered = True
            else:
                registered = False
        if registered:
            await future

    def delivery_error(self) -> AglError | None:
        """The error to raise at exit: spans failed, were dropped or were rejected; else None."""
        stats = self.stats
        where = f"rollout {self.rollout_id!r} attempt {self.attempt_id!r}"
        if stats.failed or stats.error is not None:
            cause = stats.error or UnavailableError("the store did not answer")
            return error_for_code(
                cause.code, f"{stats.failed} of {stats.spans} spans of {where} were not delivered: {cause}"
            )
        if stats.dropped:
            return UnavailableError(
                f"{stats.dropped} of {stats.spans} spans of {where} were dropped: they ended on the "
                "store's own "
                "event loop faster than the store took them; await between spans (or run the agent "
                "in a thread) "
                "so back-pressure can apply"
            )
        if stats.rejected:
            first = stats.rejected[0][1]
            return error_for_code(
                first.code,
                f"the store rejected {len(stats.rejected)} of {stats.spans} spans of {where}: {first}",
            )
        return None


class SpanSink:
    """Delivers spans of any number of trace contexts to one store, from the store's event loop.

    :param store: a :class:`~agl_core.store.LightningStore` bound (or to be bound) to ``loop``.
    :param loop: the event loop the store lives on.
    :param max_batch_spans: spans per ``add_spans`` call.
    :param max_inflight_batches: ``add_spans`` calls awaiting their acknowledgement at once.
    :param max_queued_spans: spans queued or in flight before producers wait.
    :param hard_limit_factor: how far past the limit spans ended on the store's own loop may pile up
        before they are dropped.
    """

    def __init__(
        self,
        store: Any,
        loop: asyncio.AbstractEventLoop,
        *,
        max_batch_spans: int = 512,
        max_inflight_batches: int = 4,
        max_queued_spans: int = 8192,
        hard_limit_factor: int = 8,
    ) -> None:
        if max_batch_spans < 1 or max_inflight_batches < 1 or max_queued_spans < 1:
            raise ValueError("max_batch_spans, max_inflight_batches and max_queued_spans must be at least 1")
        self.store = store
        self.loop = loop
        self.max_batch_spans = max_batch_spans
        self.max_inflight_batches = max_inflight_batches
        self.max_queued_spans = max_queued_spans
        self.hard_limit = max_queued_spans * hard_limit_factor
        self._items: deque[tuple[Span, TraceCollector]] = deque()
        self._cond = threading.Condition()
        self._queued = 0  # queued or in flight
        self._wake_pending = False
        self._closed = False
        self._slots: asyncio.Semaphore | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.waits = 0  # times a producer waited for room (back-pressure engaged)
        self.peak_queued = 0  # the most spans ever queued or in flight at once
        self.dropped = 0
        self._dropping = False

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def put(self, span: Span, collector: TraceCollector) -> bool:
        """Queue ``span``; waits while the queue is full (unless called on the store's loop).

        :returns: False if the span was dropped (only on the store's loop, past the hard limit).
        """
        on_loop = self._on_loop()
        with self._cond:
            if self._closed:
                raise UnavailableError("the tracer's span sink is closed; spans can no longer reach the store")
            if self._queued >= self.max_queued_spans:
                if on_loop:
                    if self._queued >= self.hard_limit:
                        self.dropped += 1
                        if not self._dropping:  # once per overflow, not once per span
                            self._dropping = True
                            logger.error(
                                "spans end on the event loop of %s faster than it takes them and the queue is past "
                                "its hard limit (%d): dropping spans until it drains",
                                type(self.store).__name__,
                                self.hard_limit,
                            )
                        return False
                else:
                    self.waits += 1
                    while self._queued >= self.max_queued_spans and not self._closed:
                        self._cond.wait(1.0)
            self._items.append((span, collector))
            self._queued += 1
            if self._queued > self.peak_queued:
                self.peak_queued = self._queued
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            if on_loop:
                self._wake()
            else:
                self.loop.call_soon_threadsafe(self._wake)
        return True

    @property
    def queued(self) -> int:
        return self._queued

    # --- on the store's loop ----------------------------------------------------------------------

    def _wake(self) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_inflight_batches)
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run(), name="agl-span-sink")

    async def _run(self) -> None:
        """Hand queued spans to the store until the queue is empty, then end (a put starts a new run)."""
        slots = self._slots
        assert slots is not None
        while True:
            await slots.acquire()
            with self._cond:
                count = min(len(self._items), self.max_batch_spans)
                if not count:
                    self._wake_pending = False  # from now on a put schedules a new run
                    slots.release()
                    return
                batch = [self._items.popleft() for _ in range(count)]
            task = self.loop.create_task(self._deliver(batch, slots))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _deliver(self, batch: list[tuple[Span, TraceCollector]], slots: asyncio.Semaphore) -> None:
        try:
            try:
                result = await self.store.add_spans([span for span, _ in batch])
            except AglError as exc:
                self._fail(batch, exc)
                return
            except Exception as exc:  # a broken store must not leave a trace context waiting forever
                logger.exception("delivering %d spans failed", len(batch))
                self._fail(batch, UnavailableError(f"{type(exc).__name__}: {exc}"))
                return
            self.batches += 1
            rejected: dict[int, AglError] = dict(result.rejected)  # type: ignore[arg-type]
            per_collector: dict[int, tuple[TraceCollector, int, list[tuple[Span, AglError]]]] = {}
            for index, (span, collector) in enumerate(batch):
                entry = per_collector.get(id(collector))
                if entry is None:
                    entry = per_collector[id(collector)] = (collector, 0, [])
                error = rejected.get(index)
                if error is None:
                    per_collector[id(collector)] = (collector, entry[1] + 1, entry[2])
                else:
                    entry[2].append((span, error))
            self._release(len(batch))
            for collector, delivered, refused in per_collector.values():
                collector._settle(delivered=delivered, rejected=refused)
        finally:
            slots.release()

    def _fail(self, batch: list[tuple[Span, TraceCollector]], error: AglError) -> None:
        self._release(len(batch))
        counts: dict[int, tuple[TraceCollector, int]] = {}
        for _, collector in batch:
            previous = counts.get(id(collector), (collector, 0))
            counts[id(collector)] = (collector, previous[1] + 1)
        for collector, failed in counts.values():
            collector._settle(failed=failed, error=error)

    def _release(self, count: int) -> None:
        with self._cond:
            self._queued -= count
            if self._queued < self.max_queued_spans:
                self._dropping = False
            self._cond.notify_all()

    async def aclose(self) -> None:
        """Deliver what is queued, then refuse further spans (call on the store's loop)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        while self._items or self._inflight or (self._task is not None and not self._task.done()):
            if self._items:
                self._wake()
            await asyncio.gather(*self._inflight, *([self._task] if self._task else []), return_exceptions=True)


__all__ = ["DeliveryStats", "SpanSink", "TraceCollector"]
