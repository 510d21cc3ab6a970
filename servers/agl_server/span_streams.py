"""The span streams of ``LightningStoreService``: IngestSpans (batches written concurrently so they
share group commits, acked in order, under the server-wide ingest budget) and QuerySpans (stored
bytes streamed as they are where the backend keeps them so)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from agl_core.errors import AglError, InvalidArgumentError
from agl_core.proto import store_pb2 as s
from agl_core.proto import trace_pb2
from agl_core.store.backend import StoreBackend
from agl_core.store.request_checks import check_request
from agl_core.store.span_outcomes import SpanOutcomes, reason_for_code
from agl_core.store.span_query import each_rollout
from agl_core.store.wire import repeated_message_field
from agl_server.guard import tolerant
from agl_server.ingest_budget import IngestBudget
from agl_server.rpc_errors import MalformedRequest, abort_with
from agl_server.span_checks import ReceivedSpans, all_readable, ingest_checked

# Batches of one ingest stream being written at once; past this the server stops reading the
# stream and HTTP/2 flow control holds the client back.
MAX_INFLIGHT_BATCHES = 32


@tolerant
def received_spans(raw: bytes) -> Any:
    try:
        return ReceivedSpans(raw)
    except Exception as exc:  # DecodeError, or upb's depth limit
        return MalformedRequest(s.IngestSpansRequest.DESCRIPTOR.full_name, exc)


def _spans_response_bytes(chunk: list[bytes]) -> bytes:
    """QuerySpansResponse{spans: chunk} serialized, without parsing the stored spans."""
    return repeated_message_field(1, chunk)


class SpanStreams:
    """The span RPCs of :class:`~agl_server.servicer.StoreServicer`, which provides these attributes."""

    backend: StoreBackend
    shutting_down: asyncio.Event
    ingest_budget: IngestBudget
    outcomes: SpanOutcomes
    metrics: Any

    async def IngestSpans(
        self, requests: AsyncIterator[s.IngestSpansRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[s.IngestSpansResponse]:
        """Batches are written concurrently (so they share group commits) and acked in order.

        A batch that passes the edge check whole (almost all do) goes to the store's writer as it
        is read, and its ack is built once the write is done: no task per batch, and one hop of the
        event loop less between the writer and the ack."""
        inflight: asyncio.Queue[_InFlight | None] = asyncio.Queue(MAX_INFLIGHT_BATCHES)

        raw_ingest = getattr(self.backend, "ingest_span_bytes", None)
        submit = getattr(self.backend, "submit_span_bytes", None)

        budget = self.ingest_budget
        outcomes = self.outcomes
        metrics = self.metrics

        async def store(raws: list[bytes], whole: bytes | None) -> s.IngestSpansResponse:
            if raw_ingest is not None:
                return await raw_ingest(raws, whole)
            return await self.backend.ingest_spans(_parse_spans(raws))  # a backend without the byte path

        def start(raws: list[bytes], whole: bytes) -> Any:
            """The batch's write, begun: the store's pending write, or (when a span fails the whole-batch
            check, or the backend has no synchronous submit) a task checking span by span."""
            # Only spans every client can read back reach the store (see span_checks).
            if submit is not None and all_readable(raws, whole):
                # With no other batch of this stream in flight, the stream is the source of its
                # write: a lone stream's batch then commits at once on this loop (Writer.submit).
                lone = current is None and inflight.empty()
                return submit(raws, whole, inflight if lone else None)
            return _Checked(asyncio.ensure_future(ingest_checked(raws, store, whole=whole)))

        async def read() -> None:
            try:
                async for request in requests:
                    if self.shutting_down.is_set():
                        break
                    if isinstance(request, MalformedRequest):
                        raise InvalidArgumentError(request.describe())
                    raws = list(request.spans)
                    size = sum(map(len, raws))
                    if not budget.try_acquire(size):
                        await budget.acquire(size)  # across all streams; waiting here stops reading this one
                    started = time.perf_counter()
                    try:
                        pending = start(raws, request.raw)
                    except BaseException:
                        budget.release(size)
                        raise
                    if pending.write is None:
                        budget.release(size)
                    else:
                        # Written (or failed, or given up): its bytes are no longer held. This does not
                        # wait for the ack to be read: a stream that ignores its acks holds no budget.
                        pending.write.add_done_callback(lambda _, size=size: budget.release(size))
                    batch = _InFlight(request.batch_id, len(raws), started, pending)
                    if inflight.full():
                        await inflight.put(batch)
                    else:
                        inflight.put_nowait(batch)  # no coroutine per batch when there is room
            finally:
                await inflight.put(None)

        current: _InFlight | None = None  # the batch being acked; start() reads it
        reader = asyncio.ensure_future(read())
        try:
            while True:
                current = await inflight.get() if inflight.empty() else inflight.get_nowait()
                if current is None:
                    break
                # The store's future is awaited right here, so the writer's result wakes this
                # generator itself, not a task in between.
                pending = current.pending
                if pending.write is not None:
                    await pending.write
                response = pending.answer()
                batch, current = current, None
                response.batch_id = batch.batch_id
                outcomes.stored(response.accepted, len(response.duplicate_indices))
                if response.rejected:
                    _count_rejected(outcomes, response)
                if metrics is not None:
                    metrics.ingest_batch_spans.observe(batch.spans)
                    metrics.ingest_ack_seconds.observe(time.perf_counter() - batch.started)
                yield response
            await reader  # surfaces a read error (a malformed or oversized message)
        except AglError as exc:
            await context.abort(exc.code, exc.message)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            await abort_with(context, exc, "IngestSpans")
        finally:
            reader.cancel()
            _give_up(current, inflight)
        if self.shutting_down.is_set():
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "agl-server is shutting down; resend unacknowledged batches elsewhere"
            )

    async def QuerySpans(self, request: s.QuerySpansRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            check_request(request)
            # The raw path streams stored bytes as they are; a total needs the parsed responses.
            raw = None if request.include_total else getattr(self.backend, "query_span_bytes", None)
            if raw is not None:
                # Several rollouts (rollout_ids) are queried one after the other, whatever the
                # backend; one rollout goes straight to it (no generator in between on a hot path).
                chunks = each_rollout(raw, request) if request.rollout_ids else raw(request)
                async for chunk in chunks:
                    yield _spans_response_bytes(chunk)
            else:
                async for response in each_rollout(self.backend.query_spans, request):
                    yield response
        except Exception as exc:
            await abort_with(context, exc, "QuerySpans")


class _Checked:
    """A batch checked span by span (see span_checks): its task answers for the whole batch."""

    __slots__ = ("write",)

    def __init__(self, task: asyncio.Task[s.IngestSpansResponse]) -> None:
        self.write = task

    def answer(self) -> s.IngestSpansResponse:
        return self.write.result()


class _InFlight:
    """A batch read from the stream and not yet acked."""

    __slots__ = ("batch_id", "pending", "spans", "started")

    def __init__(self, batch_id: int, spans: int, started: float, pending: Any) -> None:
        self.batch_id = batch_id
        self.spans = spans
        self.started = started
        self.pending = pending  # PendingSpans of the store, or _Checked


def _give_up(current: _InFlight | None, inflight: asyncio.Queue[_InFlight | None]) -> None:
    """The stream ended with batches not acked: those not yet written are not written (the writer
    skips a cancelled operation), and their bytes go back to the budget (the write's callback)."""
    left = [current] if current is not None else []
    while not inflight.empty():
        item = inflight.get_nowait()
        if item is not None:
            left.append(item)
    for item in left:
        if item.pending.write is not None:
            item.pending.write.cancel()


def _count_rejected(outcomes: SpanOutcomes, response: s.IngestSpansResponse) -> None:
    by_reason: dict[str, tuple[int, str]] = {}
    for error in response.rejected:
        reason = reason_for_code(error.code)
        count, first = by_reason.get(reason, (0, error.message))
        by_reason[reason] = (count + 1, first)
    for reason, (count, first) in by_reason.items():
        outcomes.reject(reason, count, first)


def _parse_spans(raws: Any) -> list[trace_pb2.Span]:
    spans = []
    for i, raw in enumerate(raws):
        try:
            spans.append(trace_pb2.Span.FromString(raw))
        except Exception as exc:
            raise InvalidArgumentError(f"spans[{i}] could not be decoded as agl.v1.Span ({exc})") from None
    return spans
