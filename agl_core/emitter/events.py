"""Messages, objects and exceptions as spans of the current trace context.

- ``emit_message(text)``: an ``agl.message`` span with ``agl.message.body``;
- ``emit_object(obj)``: an ``agl.object`` span with ``agl.object.json`` (the object as JSON) and
  ``agl.object.type``;
- ``emit_exception(exc)``: an ``agl.exception`` span with OpenTelemetry's ``exception.type``,
  ``exception.message`` and ``exception.stacktrace``, and status ERROR.
"""

from __future__ import annotations

import dataclasses
import json
import traceback
from collections.abc import Mapping
from typing import Any

from agl_core import semconv
from agl_core.emitter._record import SpanLike, attribute, record_span


def emit_message(message: str, *, attributes: Mapping[str, Any] | None = None) -> Any:
    """Record a free-form message (a log line that belongs to the rollout).

    :raises NoTraceContextError: outside a trace context.
    """
    if not isinstance(message, str):
        raise TypeError(f"emit_message takes a str, not {type(message).__name__}; use emit_object for data")
    return record_span(
        semconv.SPAN_MESSAGE, {**(attributes or {}), semconv.MESSAGE_BODY: message}, what="emit_message()"
    )


def _jsonable(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)  # pydantic models
    if callable(dump):
        return dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    raise TypeError(f"a {type(obj).__name__} cannot be written as JSON; convert it to dicts, lists and numbers first")


def emit_object(obj: Any, *, type_name: str | None = None, attributes: Mapping[str, Any] | None = None) -> Any:
    """Record a structured object (anything JSON can hold, dataclasses and pydantic models included).

    :param type_name: what to record as its type (default: the qualified name of its class).
    :raises NoTraceContextError: outside a trace context.
    :raises TypeError: for an object JSON cannot hold.
    """
    encoded = json.dumps(obj, default=_jsonable, ensure_ascii=False, allow_nan=False)
    kind = type_name or f"{type(obj).__module__}.{type(obj).__qualname__}".removeprefix("builtins.")
    return record_span(
        semconv.SPAN_OBJECT,
        {**(attributes or {}), semconv.OBJECT_JSON: encoded, semconv.OBJECT_TYPE: kind},
        what="emit_object()",
    )


def get_object(span: SpanLike) -> Any:
    """The object an ``agl.object`` span records (decoded from JSON)."""
    if span.name != semconv.SPAN_OBJECT:
        raise ValueError(f"span {span.name!r} is not an {semconv.SPAN_OBJECT} span")
    return json.loads(attribute(span, semconv.OBJECT_JSON))


def emit_exception(exception: BaseException, *, attributes: Mapping[str, Any] | None = None) -> Any:
    """Record an exception the agent handled (or is about to raise) as an error span.

    :raises NoTraceContextError: outside a trace context.
    """
    if not isinstance(exception, BaseException):
        raise TypeError(f"emit_exception takes an exception, not {type(exception).__name__}")
    stack = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
    span_attributes = {
        **(attributes or {}),
        semconv.EXCEPTION_TYPE: f"{type(exception).__module__}.{type(exception).__qualname__}".removeprefix(
            "builtins."
        ),
        semconv.EXCEPTION_MESSAGE: str(exception),
        semconv.EXCEPTION_STACKTRACE: stack,
    }
    return record_span(semconv.SPAN_EXCEPTION, span_attributes, what="emit_exception()", error=exception)


__all__ = ["emit_exception", "emit_message", "emit_object", "get_object"]
