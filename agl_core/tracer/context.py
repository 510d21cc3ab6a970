"""Which trace context (and so which rollout and attempt) the code running now belongs to.

A trace context puts its :class:`~agl_core.tracer.delivery.TraceCollector` into the OpenTelemetry
context, which follows the code wherever OpenTelemetry's context goes: into asyncio tasks, into
``asyncio.to_thread`` and ``contextvars.copy_context().run``, and into any thread that attaches a
context it was handed (``opentelemetry.context.attach``). A span whose context lost the collector
(say, its parent came through a W3C ``traceparent`` header) still finds its trace context by the
trace id of its parent. Plain ``threading.Thread`` and ``ThreadPoolExecutor`` do not carry
contexts; wrap the function with :func:`bind_context` to make them.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context

from agl_core.tracer.delivery import TraceCollector

COLLECTOR_KEY = otel_context.create_key("agl-trace-collector")

# Trace contexts that are open now, by the trace id of their root span.
_active_by_trace: dict[int, TraceCollector] = {}

F = TypeVar("F", bound=Callable[..., Any])


class NoTraceContextError(RuntimeError):
    """Something that records into a trace (an emitter) ran outside every trace context."""


def register(collector: TraceCollector) -> None:
    _active_by_trace[collector.trace_id] = collector


def unregister(collector: TraceCollector) -> None:
    if _active_by_trace.get(collector.trace_id) is collector:
        del _active_by_trace[collector.trace_id]


def collector_for(context: Context | None = None, parent: trace.SpanContext | None = None) -> TraceCollector | None:
    """The trace context a span started in ``context`` with ``parent`` belongs to, if any."""
    collector = otel_context.get_value(COLLECTOR_KEY, context)
    if collector is not None:
        return collector  # type: ignore[return-value]
    if parent is None:
        parent = trace.get_current_span(context).get_span_context()
    if parent is not None and parent.is_valid:
        return _active_by_trace.get(parent.trace_id)
    return None


def current_collector() -> TraceCollector | None:
    """The trace context of the code running now, or None outside every trace context."""
    return collector_for()


def require_collector(what: str) -> TraceCollector:
    """The current trace context; raises :class:`NoTraceContextError` naming ``what`` outside one."""
    collector = collector_for()
    if collector is None:
        raise NoTraceContextError(
            f"{what} was called outside a trace context, so there is no rollout to record it in. "
            "Call it from "
            "agent code that a runner traces, or inside `with tracer.trace_context_sync(...)` / "
            "`async with tracer.trace_context(...)`. In a thread you start yourself, pass the "
            "context along with "
            "agl_core.tracer.bind_context(fn) or asyncio.to_thread."
        )
    return collector


def bind_context(fn: F) -> F:
    """``fn`` wrapped to run in a copy of the current context (hence in the current trace context),
    wherever it is called later: hand the result to ``threading.Thread`` or an executor."""
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return captured.copy().run(fn, *args, **kwargs)

    return run  # type: ignore[return-value]


__all__ = [
    "COLLECTOR_KEY",
    "NoTraceContextError",
    "bind_context",
    "collector_for",
    "current_collector",
    "require_collector",
]
