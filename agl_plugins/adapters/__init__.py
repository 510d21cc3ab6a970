"""Built-in adapters, as a plugin: ``triplet`` (training triplets) and ``messages`` (fine-tuning records)."""

from __future__ import annotations

from typing import Any

from agl_core.adapter import TracerTraceToTriplet, TraceToMessages
from agl_core.plugins import hookimpl


@hookimpl
def agl_adapters() -> dict[str, Any]:
    return {"triplet": TracerTraceToTriplet, "messages": TraceToMessages}
