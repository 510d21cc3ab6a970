"""Built-in adapters, as a plugin: ``triplet`` (training triplets) and ``messages`` (fine-tuning records)."""

from __future__ import annotations

from typing import Any

from agl_core.plugins import hookimpl


@hookimpl
def agl_adapters() -> dict[str, Any]:
    # By import path: loaded only where an adapter is asked for.
    return {"triplet": "agl_core.adapter:TracerTraceToTriplet", "messages": "agl_core.adapter:TraceToMessages"}
