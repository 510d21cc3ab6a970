"""Built-in tracers, as a plugin: ``otel`` (OpenTelemetry, spans streamed to the store) and ``null``."""

from __future__ import annotations

from typing import Any

from agl_core.plugins import hookimpl
from agl_core.tracer import NullTracer, OtelTracer


@hookimpl
def agl_tracers() -> dict[str, Any]:
    return {"otel": OtelTracer, "null": NullTracer}
