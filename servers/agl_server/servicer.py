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
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import message_factory

from agl_core.errors import error_for_code
from agl_core.proto import store_pb2 as s
from agl_core.store.backend import StoreBackend
from agl_core.store.request_checks import check_request
from agl_core.store.span_outcomes import SpanOutcomes
from agl_server.batches import enqueue_items_alone
from agl_server.ingest_budget import DEFAULT_BUDGET_BYTES, IngestBudget
from agl_server.rpc_errors import MalformedRequest, abort_with
from agl_server.span_streams import SpanStreams, received_spans

logger = logging.getLogger("agl_server")

SERVICE_NAME = "agl.v1.LightningStoreService"
SERVICE = s.DESCRIPTOR.services_by_name["LightningStoreService"]
# A long poll ends this long before the caller's deadline, so the answer arrives in time.
_DEADLINE_MARGIN = 0.25


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _deserializer(message_class: Any) -> Callable[[bytes], Any]:
    def deserialize(raw: bytes) -> Any:
        try:
            return message_class.FromString(raw)
        except Exception as exc:  # DecodeError, or upb's depth limit
            return MalformedRequest(message_class.DESCRIPTOR.full_name, exc)

    return deserialize


def _serialize(message: Any) -> bytes:
    # Responses built from stored bytes (span chunks) pass through untouched.
    return message if isinstance(message, bytes) else message.SerializeToString()


class StoreServicer(SpanStreams):
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
                deserialize = received_spans
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
                await abort_with(context, exc, name)

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
            await abort_with(context, exc, "EnqueueRollouts")

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
            await abort_with(context, exc, "DequeueRollout")

    async def WaitForRollouts(self, request: s.WaitForRolloutsRequest, context: grpc.aio.ServicerContext) -> Any:
        try:
            check_request(request)
            timeout = request.timeout.ToNanoseconds() / 1e9 if request.HasField("timeout") else None
            capped = self._cap(context, timeout)
            if capped is not None:
                request.timeout.FromNanoseconds(int(capped * 1e9))
            finished, response = await self._until_shutdown(self.backend.wait_for_rollouts(request))
        except Exception as exc:
            await abort_with(context, exc, "WaitForRollouts")
        if not finished:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "agl-server is shutting down; call again to keep waiting")
        return response

    async def GetStats(self, request: s.GetStatsRequest, context: grpc.aio.ServicerContext) -> Any:
        """The store's statistics; the server's own gauges (the ingest budget) go in trailing metadata."""
        try:
            response = await self.backend.get_stats(request)
        except Exception as exc:
            await abort_with(context, exc, "GetStats")
        context.set_trailing_metadata(tuple((key, str(value)) for key, value in self.ingest_budget.gauges().items()))
        return response

    # --- streams -----------------------------------------------------------------------------------

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
            await abort_with(context, exc, "BackupStore")
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
            await abort_with(context, exc, "WatchRollouts")
        await context.abort(
            grpc.StatusCode.UNAVAILABLE,
            f"agl-server is shutting down; reconnect and resume after event {last}",
        )


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
