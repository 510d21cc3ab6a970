"""``LightningStoreService`` over any store backend.

Each RPC hands its request to the backend method of the same name and maps agl errors to their
gRPC status. Long calls (long polls, watch and ingest streams) also end promptly when the
server shuts down, with UNAVAILABLE so clients reconnect and resume instead of hanging until
the grace period runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import message_factory

from agl_core.errors import AglError, InvalidArgumentError, error_for_code
from agl_core.proto import store_pb2 as s
from agl_core.proto import trace_pb2
from agl_core.store.backend import StoreBackend
from agl_core.store.request_checks import check_request
from agl_core.store.span_outcomes import SpanOutcomes, reason_for_code
from agl_core.store.wire import repeated_message_field
from agl_server.batches import enqueue_items_alone
from agl_server.ingest_budget import DEFAULT_BUDGET_BYTES, IngestBudget
from agl_server.span_checks import ReceivedSpans, ingest_checked

logger = logging.getLogger("agl_server")

SERVICE_NAME = "agl.v1.LightningStoreService"
SERVICE = s.DESCRIPTOR.services_by_name["LightningStoreService"]
# Batches of one ingest stream being written at once; past this the server stops reading the
# stream and HTTP/2 flow control holds the client back.
MAX_INFLIGHT_BATCHES = 32
# A long poll ends this long before the caller's deadline, so the answer arrives in time.
_DEADLINE_MARGIN = 0.25


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class MalformedRequest:
    """Stands in for a request that could not be decoded, so the handler can answer precisely."""

    def __init__(self, message_type: str, error: Exception) -> None:
        self.message_type = message_type
        self.error = error

    def describe(self) -> str:
        return (
            f"the request could not be decoded as {self.message_type} ({self.error}); check that the client "
            "was generated from the same agl.v1 protos and that messages nest at most 100 levels"
        )


def _deserializer(message_class: Any) -> Callable[[bytes], Any]:
    def deserialize(raw: bytes) -> Any:
        try:
            return message_class.FromString(raw)
        except Exception as exc:  # DecodeError, or upb's depth limit
            return MalformedRequest(message_class.DESCRIPTOR.full_name, exc)

    return deserialize


def _received_spans(raw: bytes) -> Any:
    try:
        return ReceivedSpans(raw)
    except Exception as exc:  # DecodeError, or upb's depth limit
        return MalformedRequest(s.IngestSpansRequest.DESCRIPTOR.full_name, exc)


def _serialize(message: Any) -> bytes:
    # Responses built from stored bytes (span chunks) pass through untouched.
    return message if isinstance(message, bytes) else message.SerializeToString()


def _spans_response_bytes(chunk: list[bytes]) -> bytes:
    """QuerySpansResponse{spans: chunk} serialized, without parsing the stored spans."""
    return repeated_message_field(1, chunk)


async def _abort(context: grpc.aio.ServicerContext, error: Exception, method: str) -> None:
    if isinstance(error, AglError):
        await context.abort(error.code, error.message)
    logger.exception("%s failed", method)
    await context.abort(grpc.StatusCode.INTERNAL, f"{method} failed inside agl-server: {type(error).__name__}: {error}")


class StoreServicer:
    """Serves one backend. ``shutting_down`` is set by the server before it stops."""

    def __init__(
        self, backend: StoreBackend, ingest_budget_bytes: int = DEFAULT_BUDGET_BYTES, *, metrics: Any = None
    ) -> None:
        """:param metrics: an :class:`agl_server.metrics.ServerMetrics` to observe ingest batches in, or None."""
        self.backend = backend
        self.shutting_down = asyncio.Event()
        self.ingest_budget = IngestBudget(ingest_budget_bytes)
        self.metrics = metrics
        # Spans of IngestSpans accepted, duplicate and rejected (always counted: plain integers).
        self.outcomes = SpanOutcomes("grpc", logger)

    # --- registration ------------------------------------------------------------------------------

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        handlers: dict[str, grpc.RpcMethodHandler] = {}
        for method in SERVICE.methods:
            request_class = message_factory.GetMessageClass(method.input_type)
            deserialize = _deserializer(request_class)
            if method.name == "IngestSpans":
                # Spans stay serialized: the backend stores them as received (agl_core.store.wire).
                deserialize = _received_spans
            custom = getattr(self, method.name, None)
            if method.client_streaming and method.server_streaming:
                handler = grpc.stream_stream_rpc_method_handler(
                    custom, request_deserializer=deserialize, response_serializer=_serialize
                )
            elif method.server_streaming:
                handler = grpc.unary_stream_rpc_method_handler(
                    _checked_stream(custom), request_deserializer=deserialize, response_serializer=_serialize
                )
            else:
                fn = _checked(custom) if custom else self._unary(method.name, self._backend_method(method.name))
                handler = grpc.unary_unary_rpc_method_handler(
                    fn, request_deserializer=deserialize, response_serializer=_serialize
                )
            handlers[method.name] = handler
        return handlers

    def register(self, server: grpc.aio.Server) -> None:
        handlers = self.method_handlers()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        with contextlib.suppress(AttributeError):  # registered methods skip the generic lookup (grpc >= 1.62)
            server.add_registered_method_handlers(SERVICE_NAME, handlers)

    def _backend_method(self, name: str) -> Callable[[Any], Awaitable[Any]]:
        found = getattr(self.backend, _snake(name), None)
        if found is not None:
            return found  # type: ignore[no-any-return]

        async def unsupported(request: Any) -> Any:
            raise error_for_code(
                grpc.StatusCode.UNIMPLEMENTED,
                f"the store backend {getattr(self.backend, 'name', '?')!r} does not implement {name}; "
                "use the lmdb backend or a plugin version that does",
            )

        return unsupported

    @staticmethod
    def _unary(name: str, method: Callable[[Any], Awaitable[Any]]) -> Callable[[Any, Any], Awaitable[Any]]:
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, MalformedRequest):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.describe())
            try:
                check_request(request)
                return await method(request)
            except Exception as exc:
                await _abort(context, exc, name)

        handle.__name__ = name
        return handle

    # --- long polls --------------------------------------------------------------------------------

    def _cap(self, context: grpc.aio.ServicerContext, seconds: float | None) -> float | None:
        remaining = context.time_remaining()
        if remaining is None:
            return seconds
        remaining = max(0.0, remaining - _DEADLINE_MARGIN)
        return remaining if seconds is None else min(seconds, remaining)

    async def _until_shutdown(self, coro: Awaitable[Any]) -> tuple[bool, Any]:
        """Run ``coro``; return (True, result), or (False, None) if the server began shutting down."""
        task = asyncio.ensure_future(coro)
        stop = asyncio.ensure_future(self.shutting_down.wait())
        try:
            await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The client went away: the work must stop too (a long poll left running would claim a
            # rollout for a caller who will never see it).
            task.cancel()
            raise
        finally:
            stop.cancel()
        if task.done():
            return True, task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        return False, None

    async def EnqueueRollouts(self, request: s.EnqueueRolloutsRequest, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await enqueue_items_alone(self.backend, request)
        except Exception as exc:
            await _abort(context, exc, "EnqueueRollouts")

    async def DequeueRollout(self, request: s.DequeueRolloutRequest, context: grpc.aio.ServicerContext) -> Any:
        try:
            check_request(request)
            wait = request.wait.ToNanoseconds() / 1e9 if request.HasField("wait") else 0.0
            capped = self._cap(context, wait)
            if capped is not None and capped < wait:
                request.wait.FromNanoseconds(int(capped * 1e9))
            finished, response = await self._until_shutdown(self.backend.dequeue_rollout(request))
            if not finished:
                # A poll cut short by shutdown answers "no work"; the worker polls the next server.
                return s.DequeueRolloutResponse()
            release = getattr(self.backend, "release_claims", None)
            if context.cancelled() and response.rollouts and release is not None:
                await release(response.rollouts)  # the caller is gone; the answer would be lost
            return response
        except Exception as exc:
            await _abort(context, exc, "DequeueRollout")

    async def WaitForRollouts(self, request: s.WaitForRolloutsRequest, context: grpc.aio.ServicerContext) -> Any:
        try:
            check_request(request)
            timeout = request.timeout.ToNanoseconds() / 1e9 if request.HasField("timeout") else None
            capped = self._cap(context, timeout)
            if capped is not None:
                request.timeout.FromNanoseconds(int(capped * 1e9))
            finished, response = await self._until_shutdown(self.backend.wait_for_rollouts(request))
        except Exception as exc:
            await _abort(context, exc, "WaitForRollouts")
        if not finished:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "agl-server is shutting down; call again to keep waiting")
        return response

    async def GetStats(self, request: s.GetStatsRequest, context: grpc.aio.ServicerContext) -> Any:
        """The store's statistics; the server's own gauges (the ingest budget) go in trailing metadata."""
        try:
            response = await self.backend.get_stats(request)
        except Exception as exc:
            await _abort(context, exc, "GetStats")
        context.set_trailing_metadata(tuple((key, str(value)) for key, value in self.ingest_budget.gauges().items()))
        return response

    # --- streams -----------------------------------------------------------------------------------

    async def IngestSpans(
        self, requests: AsyncIterator[s.IngestSpansRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[s.IngestSpansResponse]:
        """Batches are written concurrently (so they share group commits) and acked in order."""
        inflight: asyncio.Queue[asyncio.Future[s.IngestSpansResponse] | None] = asyncio.Queue(MAX_INFLIGHT_BATCHES)

        raw_ingest = getattr(self.backend, "ingest_span_bytes", None)

        budget = self.ingest_budget
        outcomes = self.outcomes
        metrics = self.metrics

        async def store(raws: list[bytes], whole: bytes | None) -> s.IngestSpansResponse:
            if raw_ingest is not None:
                return await raw_ingest(raws, whole)
            return await self.backend.ingest_spans(_parse_spans(raws))  # a backend without the byte path

        async def ingest(request: Any, size: int) -> s.IngestSpansResponse:
            started = time.perf_counter()
            try:
                # Only spans every client can read back reach the store (see span_checks).
                response = await ingest_checked(list(request.spans), store, whole=request.raw)
            finally:
                budget.release(size)  # written (or failed): its bytes are no longer held
            response.batch_id = request.batch_id
            outcomes.stored(response.accepted, len(response.duplicate_indices))
            if response.rejected:
                _count_rejected(outcomes, response)
            if metrics is not None:
                metrics.ingest_batch_spans.observe(len(request.spans))
                metrics.ingest_ack_seconds.observe(time.perf_counter() - started)
            return response

        async def read() -> None:
            try:
                async for request in requests:
                    if self.shutting_down.is_set():
                        break
                    if isinstance(request, MalformedRequest):
                        raise InvalidArgumentError(request.describe())
                    size = sum(map(len, request.spans))
                    await budget.acquire(size)  # across all streams; waiting here stops reading this one
                    await inflight.put(asyncio.ensure_future(ingest(request, size)))
            finally:
                await inflight.put(None)

        reader = asyncio.ensure_future(read())
        pending: list[asyncio.Future[Any]] = []
        try:
            while True:
                getter = asyncio.ensure_future(inflight.get())
                pending = [getter]
                future = await getter
                if future is None:
                    break
                pending = [future]
                yield await future
            await reader  # surfaces a read error (a malformed or oversized message)
        except AglError as exc:
            await context.abort(exc.code, exc.message)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            await _abort(context, exc, "IngestSpans")
        finally:
            reader.cancel()
            for future in pending:
                future.cancel()
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
                async for chunk in raw(request):
                    yield _spans_response_bytes(chunk)
            else:
                async for response in self.backend.query_spans(request):
                    yield response
        except Exception as exc:
            await _abort(context, exc, "QuerySpans")

    async def BackupStore(
        self, request: s.BackupStoreRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[s.BackupStoreResponse]:
        """The compacted copy, chunk by chunk; a shutdown ends it with UNAVAILABLE (the client keeps
        no partial file: the last message, with the checksum, never came)."""
        backup = getattr(self.backend, "backup_store", None)
        if backup is None:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"the store backend {getattr(self.backend, 'name', '?')!r} cannot make backups; copy its data "
                "with its own tools",
            )
        finished = False
        try:
            stream = backup(request).__aiter__()
            while True:
                running, response = await self._until_shutdown(_next(stream))
                if not running or response is None:
                    finished = running
                    break
                yield response
        except Exception as exc:
            await _abort(context, exc, "BackupStore")
        if not finished:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "agl-server is shutting down; run the backup again")

    async def WatchRollouts(
        self, request: s.WatchRolloutsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[s.WatchRolloutsResponse]:
        last = None
        try:
            check_request(request)
            stream = self.backend.watch_rollouts(request).__aiter__()
            while True:
                finished, response = await self._until_shutdown(_next(stream))
                if not finished or response is None:
                    break
                last = response.last_event_id
                yield response
        except Exception as exc:
            await _abort(context, exc, "WatchRollouts")
        await context.abort(
            grpc.StatusCode.UNAVAILABLE,
            f"agl-server is shutting down; reconnect and resume after event {last}",
        )


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


def _checked(handler: Callable[[Any, Any], Awaitable[Any]]) -> Callable[[Any, Any], Awaitable[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, MalformedRequest):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.describe())
        return await handler(request, context)

    return handle


def _checked_stream(handler: Callable[[Any, Any], AsyncIterator[Any]]) -> Callable[[Any, Any], AsyncIterator[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if isinstance(request, MalformedRequest):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.describe())
        async for response in handler(request, context):
            yield response

    return handle


async def _next(stream: AsyncIterator[Any]) -> Any:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None
