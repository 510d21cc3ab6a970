"""The client side of span ingestion: batching, pipelining, acknowledgement and resending.

Callers hand over spans (``submit``) and get the outcome once the server has made them
durable. Behind that, spans from all callers are packed into batches (by count and bytes) and
written on one long-lived ``IngestSpans`` stream, several batches in flight at once; the server
acknowledges each batch in order. If the stream breaks, the unacknowledged batches are sent again
on a new stream (the server ignores span ids it already stored, so nothing is stored twice) until
the retry deadline passes (:mod:`agl_core.client.retry`). Memory is bounded: a caller waits when
too many spans are queued.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc

from agl_core.client.retry import DEFAULT_RETRY_DEADLINE, STREAM_RETRYABLE, Outage
from agl_core.errors import AglError, ResourceExhaustedError, UnavailableError, code_number
from agl_core.proto import store_pb2 as s
from agl_core.proto import trace_pb2
from agl_core.store.wire import varint as _varint

logger = logging.getLogger(__name__)


@dataclass
class _Request:
    future: asyncio.Future[s.IngestSpansResponse]
    response: s.IngestSpansResponse
    outstanding: int


@dataclass
class _Part:
    """Spans of one request inside one batch: their indices in the request, in batch order."""

    request: _Request
    indices: list[int]


@dataclass
class _Pending:
    request: _Request
    items: deque[tuple[int, bytes]]


@dataclass
class _Batch:
    batch_id: int
    payload: bytes
    parts: list[_Part] = field(default_factory=list)
    spans: int = 0


class _StreamEnded(Exception):
    pass


class SpanStreamer:
    """Streams spans to agl-server with acknowledgements.

    :param open_stream: opens a new ``IngestSpans`` call whose requests are raw serialized bytes.
    :param retry_deadline: seconds the stream keeps reconnecting without an ack before the spans
        it holds fail.
    """

    def __init__(
        self,
        open_stream: Callable[[], grpc.aio.StreamStreamCall],
        address: str,
        *,
        max_batch_spans: int = 1024,
        max_batch_bytes: int = 1 << 20,
        max_inflight_batches: int = 16,
        max_queued_spans: int = 100_000,
        max_span_bytes: int = 16 << 20,
        retry_deadline: float = DEFAULT_RETRY_DEADLINE,
    ) -> None:
        self._open_stream = open_stream
        self._address = address
        self._max_batch_spans = max_batch_spans
        self._max_batch_bytes = max_batch_bytes
        self._max_inflight = max_inflight_batches
        self._max_queued = max_queued_spans
        self._max_span_bytes = max_span_bytes
        self._retry_deadline = retry_deadline
        self._pending: deque[_Pending] = deque()
        self._resend: deque[_Batch] = deque()
        self._inflight: dict[int, _Batch] = {}
        self._queued = 0
        self._batch_ids = itertools.count(1)
        self._cond = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches_sent = 0
        self.reconnects = 0

    async def submit(self, spans: Sequence[trace_pb2.Span]) -> s.IngestSpansResponse:
        """Send ``spans``; returns the merged outcome once all of them are acknowledged."""
        if self._closed:
            raise UnavailableError("the span stream is closed")
        loop = asyncio.get_running_loop()
        request = _Request(loop.create_future(), s.IngestSpansResponse(), 0)
        items: deque[tuple[int, bytes]] = deque()
        for i, span in enumerate(spans):
            raw = span.SerializeToString()
            if len(raw) > self._max_span_bytes:
                request.response.rejected.add(
                    index=i,
                    code=code_number(ResourceExhaustedError("")),
                    message=f"spans[{i}] is {len(raw)} bytes, over the {self._max_span_bytes}-byte limit of one "
                    "message; trim its attributes",
                )
            else:
                items.append((i, raw))
        if not items:
            return request.response
        request.outstanding = len(items)
        async with self._cond:
            await self._cond.wait_for(lambda: self._queued < self._max_queued or self._closed)
            if self._closed:
                raise UnavailableError("the span stream is closed")
            self._pending.append(_Pending(request, items))
            self._queued += len(items)
            self._cond.notify_all()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="agl-span-streamer")
        return await request.future

    async def flush(self) -> None:
        """Wait until every span submitted so far is acknowledged (or failed)."""
        async with self._cond:
            await self._cond.wait_for(lambda: not self._pending and not self._inflight and not self._resend)

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await asyncio.wait_for(self.flush(), self._retry_deadline)
        except TimeoutError:
            pass
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._fail_all(UnavailableError("the span stream was closed before these spans were acknowledged"))

    # --- the stream --------------------------------------------------------------------------------

    async def _run(self) -> None:
        outage = Outage(self._retry_deadline)
        while not self._closed:
            async with self._cond:
                await self._cond.wait_for(lambda: bool(self._pending or self._resend or self._inflight) or self._closed)
            if self._closed:
                return
            call = self._open_stream()
            acked_before = self.batches_sent
            try:
                await self._pump(call)
            except asyncio.CancelledError:
                call.cancel()
                raise
            except grpc.aio.AioRpcError as exc:
                code, error = exc.code(), exc
            except _StreamEnded:
                code, error = grpc.StatusCode.UNAVAILABLE, None
            else:  # pragma: no cover - _pump only returns by raising
                continue
            call.cancel()
            if self.batches_sent > acked_before:  # that stream delivered: a new outage starts now
                outage.succeeded()
            wait = outage.failed() if code in STREAM_RETRYABLE else None
            async with self._cond:
                broken = list(self._inflight.values())
                self._inflight.clear()
                if wait is not None:
                    self._resend.extendleft(reversed(broken))
                    self.reconnects += 1
                elif code in STREAM_RETRYABLE:  # out of time
                    failure = UnavailableError(
                        f"could not deliver spans to agl-server at {self._address} for "
                        f"{self._retry_deadline:g}s ({error.details() if error else 'stream ended'})"
                    )
                    for batch in [*broken, *self._resend]:
                        self._fail_batch(batch, failure)
                    self._resend.clear()
                    self._fail_pending(failure)
                    outage.succeeded()  # whatever comes next starts a new outage
                else:  # the server's answer: these batches fail at once, nothing waits
                    from agl_core.client.channel import map_rpc_error

                    failure = map_rpc_error(error, self._address) if error else UnavailableError("stream ended")
                    for batch in broken:
                        self._fail_batch(batch, failure)
                    outage.succeeded()
                self._cond.notify_all()
            if wait is not None:
                await asyncio.sleep(wait)

    async def _pump(self, call: grpc.aio.StreamStreamCall) -> None:
        sender = asyncio.create_task(self._send_loop(call))
        try:
            await self._receive_loop(call)
        finally:
            sender.cancel()
            try:
                await sender
            except (asyncio.CancelledError, Exception):
                pass

    async def _send_loop(self, call: grpc.aio.StreamStreamCall) -> None:
        while True:
            async with self._cond:
                await self._cond.wait_for(
                    lambda: bool(self._resend or self._pending) and len(self._inflight) < self._max_inflight
                )
                batch = self._resend.popleft() if self._resend else self._pack()
                self._inflight[batch.batch_id] = batch
            await call.write(batch.payload)

    async def _receive_loop(self, call: grpc.aio.StreamStreamCall) -> None:
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                await call  # raises AioRpcError if the server ended the call with an error
                raise _StreamEnded()
            async with self._cond:
                batch = self._inflight.pop(response.batch_id, None)
                if batch is None:
                    logger.warning("agl-server acknowledged unknown span batch %d", response.batch_id)
                    continue
                self._complete(batch, response)
                self.batches_sent += 1
                self._cond.notify_all()

    # --- bookkeeping (under the condition's lock) -------------------------------------------------

    def _pack(self) -> _Batch:
        batch = _Batch(next(self._batch_ids), b"")
        chunks = [b"\x08", _varint(batch.batch_id)]
        size = 0
        while self._pending and batch.spans < self._max_batch_spans:
            pending = self._pending[0]
            part = _Part(pending.request, [])
            while pending.items and batch.spans < self._max_batch_spans:
                index, raw = pending.items[0]
                if batch.spans and size + len(raw) > self._max_batch_bytes:
                    break
                pending.items.popleft()
                chunks.append(b"\x12")
                chunks.append(_varint(len(raw)))
                chunks.append(raw)
                size += len(raw)
                part.indices.append(index)
                batch.spans += 1
            if part.indices:
                batch.parts.append(part)
            if pending.items:
                break  # the batch is full
            self._pending.popleft()
        batch.payload = b"".join(chunks)
        return batch

    def _complete(self, batch: _Batch, response: s.IngestSpansResponse) -> None:
        duplicates = set(response.duplicate_indices)
        rejected = {e.index: e for e in response.rejected}
        position = 0
        for part in batch.parts:
            request = part.request
            for index in part.indices:
                if position in duplicates:
                    request.response.duplicate_indices.append(index)
                elif position in rejected:
                    error = rejected[position]
                    request.response.rejected.add(index=index, code=error.code, message=error.message)
                else:
                    request.response.accepted += 1
                position += 1
            self._settle(request, len(part.indices))
        self._queued -= batch.spans

    def _settle(self, request: _Request, count: int) -> None:
        request.outstanding -= count
        if request.outstanding == 0 and not request.future.done():
            request.response.rejected.sort(key=lambda e: e.index)
            request.future.set_result(request.response)

    def _fail_batch(self, batch: _Batch, error: AglError) -> None:
        for part in batch.parts:
            if not part.request.future.done():
                part.request.future.set_exception(error)
        self._queued -= batch.spans

    def _fail_pending(self, error: AglError) -> None:
        while self._pending:
            pending = self._pending.popleft()
            self._queued -= len(pending.items)
            if not pending.request.future.done():
                pending.request.future.set_exception(error)

    def _fail_all(self, error: AglError) -> None:
        for batch in [*self._inflight.values(), *self._resend]:
            self._fail_batch(batch, error)
        self._inflight.clear()
        self._resend.clear()
        self._fail_pending(error)
