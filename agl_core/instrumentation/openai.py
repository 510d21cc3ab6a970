"""Every ``openai`` chat or text completion made inside a trace context becomes a span.

:func:`instrument_openai` replaces ``create`` (and ``parse`` for chat) on the client's resource
classes, sync and async; :func:`uninstrument_openai` puts the originals back. Outside a trace
context the replacements call straight through. Inside one, each call gets a CLIENT span named
``chat {model}`` (or ``text_completion {model}``) with the request, the response, usage and, when
the server returns them, token ids (names in :mod:`agl_core.semconv`). A streamed call's span
covers the whole stream and ends when the stream is exhausted or closed; its response is rebuilt
from the chunks, token ids included. ``chat.completions.stream(...)`` goes through ``create``
and is covered too.

Calls made through ``with_raw_response`` are recorded with their parsed response; streamed ones
through ``with_raw_response``/``with_streaming_response`` are recorded with their request only.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from agl_core import semconv
from agl_core.instrumentation.llm_record import (
    StreamAccumulator,
    request_attributes,
    response_attributes,
    to_jsonable,
)
from agl_core.tracer.context import current_collector

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_originals: dict[tuple[type, str], Any] = {}
_options: dict[str, Any] = {"request_token_ids": False}
# Arguments of create() that configure the client call rather than form the request body.
_CLIENT_ARGS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})


def _targets() -> list[tuple[type, str, str, bool]]:
    """(class, method, operation, is_async) for every method to wrap."""
    from openai.resources import completions as text
    from openai.resources.chat import completions as chat

    return [
        (chat.Completions, "create", semconv.GEN_AI_OPERATION_CHAT, False),
        (chat.Completions, "parse", semconv.GEN_AI_OPERATION_CHAT, False),
        (chat.AsyncCompletions, "create", semconv.GEN_AI_OPERATION_CHAT, True),
        (chat.AsyncCompletions, "parse", semconv.GEN_AI_OPERATION_CHAT, True),
        (text.Completions, "create", semconv.GEN_AI_OPERATION_TEXT_COMPLETION, False),
        (text.AsyncCompletions, "create", semconv.GEN_AI_OPERATION_TEXT_COMPLETION, True),
    ]


def instrument_openai(*, request_token_ids: bool = False) -> None:
    """Wrap the ``openai`` completion methods (idempotent).

    :param request_token_ids: add ``return_token_ids: true`` to every traced request so that vLLM
        returns token ids (OpenAI's own API rejects the parameter).
    """
    with _lock:
        _options["request_token_ids"] = request_token_ids
        if _originals:
            return
        for cls, name, operation, is_async in _targets():
            original = cls.__dict__.get(name)
            if original is None:  # an older openai without this method
                continue
            _originals[(cls, name)] = original
            wrapper = _async_wrapper(original, operation) if is_async else _sync_wrapper(original, operation)
            setattr(cls, name, wrapper)


def uninstrument_openai() -> None:
    """Put the original ``openai`` methods back."""
    with _lock:
        for (cls, name), original in _originals.items():
            setattr(cls, name, original)
        _originals.clear()


def is_instrumented() -> bool:
    return bool(_originals)


# --- one call ----------------------------------------------------------------------------------------


class _Call:
    """The span of one LLM call, from the request to the (possibly streamed) response."""

    def __init__(self, collector: Any, resource: Any, operation: str, kwargs: dict[str, Any]) -> None:
        self.operation = operation
        if "messages" in kwargs and not isinstance(kwargs["messages"], (list, tuple)):
            kwargs["messages"] = list(kwargs["messages"])  # an iterator would be consumed by recording it
        if _options["request_token_ids"]:
            extra = dict(kwargs.get("extra_body") or {})
            extra.setdefault("return_token_ids", True)
            kwargs["extra_body"] = extra
        request = {k: to_jsonable(v) for k, v in kwargs.items() if k not in _CLIENT_ARGS and _given(v)}
        if isinstance(kwargs.get("extra_body"), dict):
            request.update(to_jsonable(kwargs["extra_body"]))
        response_format = kwargs.get("response_format")
        if isinstance(response_format, type):  # parse(response_format=PydanticModel)
            request["response_format"] = {"type": "json_schema", "name": response_format.__name__}
        client = getattr(resource, "_client", None)
        endpoint = str(getattr(client, "base_url", "") or "") or None
        model = request.get("model") or ""
        self.span = collector.otel_tracer.start_span(
            f"{operation} {model}".strip(),
            kind=SpanKind.CLIENT,
            attributes=request_attributes(request, operation=operation, endpoint=endpoint),
        )
        self.stream = bool(request.get("stream"))
        self._ended = False

    def scope(self) -> Any:
        """Make the span current while the client sends the request (so HTTP spans nest under it)."""
        return trace.use_span(self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False)

    def succeed(self, response: Any) -> None:
        if self._ended:
            return
        try:
            data = to_jsonable(response)
            if isinstance(data, dict):
                self.span.set_attributes(response_attributes(data))
        except Exception:  # recording must never break the agent
            logger.exception("could not record an LLM response")
        self._end()

    def fail(self, error: BaseException) -> None:
        if self._ended:
            return
        self.span.record_exception(error)
        self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        self.span.set_attribute(semconv.LLM_ERROR, f"{type(error).__name__}: {error}")
        self._end()

    def _end(self) -> None:
        self._ended = True
        self.span.end()

    def finish(self, result: Any) -> Any:
        """Record ``result`` of the call and return what the caller gets (a stream is wrapped)."""
        from openai import AsyncStream, Stream
        from openai._legacy_response import LegacyAPIResponse

        if isinstance(result, Stream):
            return _TracedStream(result, self)
        if isinstance(result, AsyncStream):
            return _TracedAsyncStream(result, self)
        if isinstance(result, LegacyAPIResponse) and not self.stream:
            self.succeed(result.parse())  # parse() caches: the caller's parse() gets the same object
            return result
        if hasattr(result, "model_dump"):
            self.succeed(result)
        else:
            self.span.set_attribute("agl.llm.response_unavailable", True)
            self._end()
        return result


def _given(value: Any) -> bool:
    from openai._types import NotGiven, Omit

    return not isinstance(value, (NotGiven, Omit))


def _sync_wrapper(original: Callable[..., Any], operation: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        collector = current_collector()
        if collector is None or args:  # positional use is not the public API; leave it alone
            return original(self, *args, **kwargs)
        call = _Call(collector, self, operation, kwargs)
        try:
            with call.scope():
                result = original(self, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        return call.finish(result)

    return traced


def _async_wrapper(original: Callable[..., Any], operation: str) -> Callable[..., Any]:
    @functools.wraps(original)
    async def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        collector = current_collector()
        if collector is None or args:
            return await original(self, *args, **kwargs)
        call = _Call(collector, self, operation, kwargs)
        try:
            with call.scope():
                result = await original(self, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        return call.finish(result)

    return traced


# --- streams -----------------------------------------------------------------------------------------


class _StreamRecorder:
    """What the sync and async stream wrappers share: the call, the chunks so far, delegation."""

    def __init__(self, stream: Any, call: _Call) -> None:
        self._stream = stream
        self._call = call
        self._acc = StreamAccumulator(call.operation)

    def _failed(self, exc: BaseException) -> None:
        if not isinstance(exc, GeneratorExit):  # GeneratorExit: closed early, recorded by close()
            self._call.fail(exc)

    def _done(self) -> None:
        self._call.succeed(self._acc.response())  # a stream closed early keeps what arrived

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __del__(self) -> None:
        call = self.__dict__.get("_call")
        if call is not None and not call._ended:
            self._done()


class _TracedStream(_StreamRecorder):
    """A ``Stream`` that records its chunks; the span ends when the stream is exhausted or closed."""

    def __init__(self, stream: Any, call: _Call) -> None:
        super().__init__(stream, call)
        self._iterator = self._record()

    def _record(self) -> Any:
        try:
            for chunk in self._stream:
                self._acc.add(chunk)
                yield chunk
        except BaseException as exc:
            self._failed(exc)
            raise
        self._done()

    def __iter__(self) -> Any:
        return self._iterator

    def __next__(self) -> Any:
        return next(self._iterator)

    def __enter__(self) -> _TracedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stream.close()
        self._done()


class _TracedAsyncStream(_StreamRecorder):
    """An ``AsyncStream`` that records its chunks; the span ends when it is exhausted or closed."""

    def __init__(self, stream: Any, call: _Call) -> None:
        super().__init__(stream, call)
        self._iterator = self._record()

    async def _record(self) -> Any:
        try:
            async for chunk in self._stream:
                self._acc.add(chunk)
                yield chunk
        except BaseException as exc:
            self._failed(exc)
            raise
        self._done()

    def __aiter__(self) -> Any:
        return self._iterator

    async def __anext__(self) -> Any:
        return await self._iterator.__anext__()

    async def __aenter__(self) -> _TracedAsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._stream.close()
        self._done()


__all__ = ["instrument_openai", "is_instrumented", "uninstrument_openai"]
