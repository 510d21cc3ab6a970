"""Recording one event as a span of the current trace context, and reading span attributes back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from agl_core.proto.trace_pb2 import Span
from agl_core.tracer.context import require_collector
from agl_core.types.values import from_any_value

SpanLike = Span | ReadableSpan


def record_span(name: str, attributes: Mapping[str, Any], *, what: str, error: BaseException | None = None) -> Any:
    """Start and end a span named ``name`` under the current span of the current trace context.

    :raises NoTraceContextError: outside every trace context (``what`` names the caller).
    """
    collector = require_collector(what)
    span = collector.otel_tracer.start_span(name, attributes=attributes)
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()
    return span


def attributes_of(span: SpanLike) -> Mapping[str, Any]:
    """A span's attributes as a mapping, for agl spans and OpenTelemetry SDK spans alike."""
    if isinstance(span, Span):
        return {kv.key: from_any_value(kv.value) for kv in span.attributes}
    return span.attributes or {}


def attribute(span: SpanLike, key: str) -> Any:
    """One attribute of a span (None if absent), without converting the others."""
    if isinstance(span, Span):
        for kv in reversed(span.attributes):
            if kv.key == key:
                return from_any_value(kv.value)
        return None
    return (span.attributes or {}).get(key)
