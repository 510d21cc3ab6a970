"""The interceptor in front of every agl-server method: token, decoding, and the unary shape.

- The bearer token is checked on the call's metadata before the body is read: a refused call's
  bytes are never parsed.
- Bytes that do not decode as the method's request (corrupt wire data, messages nested deeper
  than protobuf's limit of 100) are answered INVALID_ARGUMENT with what to check, for every
  service on the port (agl's, OTLP, health, reflection), instead of grpc's UNKNOWN.
- Unary requests are read as a stream of one message: grpc.aio leaves a unary call whose client
  half-closes without sending a message unanswered until the caller's deadline; read this way it
  gets INVALID_ARGUMENT at once.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from agl_server.auth import TokenCheck

Deserializer = Callable[[bytes], Any] | None


def _type_name(deserialize: Deserializer, method: str) -> str:
    owner = getattr(deserialize, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return getattr(descriptor, "full_name", None) or f"the request of {method}"


def describe_decode_error(type_name: str, error: Exception) -> str:
    return (
        f"the request could not be decoded as {type_name} ({error}); check that the client was generated from "
        "the same protos, sends valid UTF-8 in string fields and nests messages at most 100 levels deep"
    )


async def _decode(raw: bytes, deserialize: Deserializer, type_name: str, context: grpc.aio.ServicerContext) -> Any:
    if deserialize is None:
        return raw
    try:
        return deserialize(raw)
    except Exception as exc:  # DecodeError, upb's depth limit, a bad UTF-8 string
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, describe_decode_error(type_name, exc))


async def _first(requests: AsyncIterator[bytes], method: str, context: grpc.aio.ServicerContext) -> bytes:
    async for raw in requests:
        return raw
    await context.abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{method} is a unary method but the call ended without a request message; send exactly one",
    )
    raise AssertionError("unreachable")  # abort raises


async def _decoded_stream(
    requests: AsyncIterator[bytes], deserialize: Deserializer, type_name: str, context: grpc.aio.ServicerContext
) -> AsyncIterator[Any]:
    if deserialize is None:
        async for raw in requests:
            yield raw
        return
    # _decode inlined: a coroutine per message cost every streamed message (span batches, Work
    # stream reports) a few microseconds of the event loop.
    async for raw in requests:
        try:
            message = deserialize(raw)
        except Exception as exc:  # DecodeError, upb's depth limit, a bad UTF-8 string
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, describe_decode_error(type_name, exc))
        yield message


def _with_requests(
    behavior: Callable[..., Any], prepare: Callable[[AsyncIterator[bytes], Any], Awaitable[Any]] | None
) -> Callable[..., Any]:
    """Call ``behavior`` with the request ``prepare`` makes of the raw request stream.

    The wrapper is of the same kind as ``behavior`` (coroutine function or async generator
    function): grpc.aio chooses how to drive a handler by the kind of the function.
    """

    async def make(requests: AsyncIterator[bytes], context: Any) -> Any:
        return await prepare(requests, context) if prepare is not None else requests

    if inspect.isasyncgenfunction(behavior):

        async def generator(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for response in behavior(await make(requests, context), context):
                yield response

        return generator

    async def coroutine(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> Any:
        result = behavior(await make(requests, context), context)
        return await result if inspect.isawaitable(result) else result

    return coroutine


def tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """Mark a request deserializer that never raises: it makes a bad message into a value that its
    method answers INVALID_ARGUMENT for (``IngestSpans``). A streaming method with one is served
    as registered, its requests decoded by grpc: the two async generators that decoding here puts
    between grpc and the method cost every message of the stream a few microseconds."""
    deserialize._agl_tolerant = True  # type: ignore[attr-defined]
    return deserialize


def guarded(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """``handler`` with every request read as raw bytes and decoded here (see the module doc)."""
    deserialize = handler.request_deserializer
    if handler.stream_stream is not None and getattr(deserialize, "_agl_tolerant", False):
        return handler
    type_name = _type_name(deserialize, method)
    serialize = handler.response_serializer

    async def one(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> Any:
        return await _decode(await _first(requests, method, context), deserialize, type_name, context)

    async def stream(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        return _decoded_stream(requests, deserialize, type_name, context)

    if handler.unary_unary is not None:
        behavior = _with_requests(handler.unary_unary, one)
        return grpc.stream_unary_rpc_method_handler(behavior, response_serializer=serialize)
    if handler.unary_stream is not None:
        behavior = _with_requests(handler.unary_stream, one)
        return grpc.stream_stream_rpc_method_handler(behavior, response_serializer=serialize)
    if handler.stream_unary is not None:
        behavior = _with_requests(handler.stream_unary, stream)
        return grpc.stream_unary_rpc_method_handler(behavior, response_serializer=serialize)
    behavior = _with_requests(handler.stream_stream, stream)
    return grpc.stream_stream_rpc_method_handler(behavior, response_serializer=serialize)


def refused(handler: grpc.RpcMethodHandler | None, message: str) -> grpc.RpcMethodHandler:
    """A handler that answers UNAUTHENTICATED without reading or decoding the request."""

    async def deny(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    serialize = handler.response_serializer if handler is not None else None
    if handler is not None and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny, response_serializer=serialize)
    return grpc.stream_unary_rpc_method_handler(deny, response_serializer=serialize)


class RequestGuard(grpc.aio.ServerInterceptor):
    """The first interceptor of agl-server. ``token``: the bearer token, or None for no auth."""

    def __init__(self, token: str | None = None) -> None:
        self._token = TokenCheck(token) if token else None
        # Method -> (the handler grpc resolved, its guarded form): built once per method, not per call.
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if self._token is not None:
            refusal = self._token.refusal(method, handler_call_details.invocation_metadata)
            if refusal is not None:
                return refused(await continuation(handler_call_details), refusal)
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # type: ignore[return-value]  # grpc answers UNIMPLEMENTED
        cached = self._guarded.get(method)
        if cached is None or cached[0] is not handler:
            cached = (handler, guarded(handler, method))
            self._guarded[method] = cached
        return cached[1]
