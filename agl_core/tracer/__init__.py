"""Tracers collect the spans of an agent's attempt and deliver them to the store."""

from agl_core.tracer.base import NullTracer, Tracer
from agl_core.tracer.context import NoTraceContextError, bind_context, current_collector
from agl_core.tracer.delivery import DeliveryStats, TraceCollector
from agl_core.tracer.otel import OtelTracer

__all__ = [
    "DeliveryStats",
    "NoTraceContextError",
    "NullTracer",
    "OtelTracer",
    "TraceCollector",
    "Tracer",
    "bind_context",
    "current_collector",
]
