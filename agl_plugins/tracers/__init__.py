"""Built-in tracers, as a plugin: ``otel`` (OpenTelemetry, spans streamed to the store) and ``null``."""

from __future__ import annotations

from typing import Any

from agl_core.plugins import hookimpl


@hookimpl
def agl_tracers() -> dict[str, Any]:
    # By import path: the OpenTelemetry SDK loads only in processes that trace.
    return {"otel": "agl_core.tracer:OtelTracer", "null": "agl_core.tracer:NullTracer"}
