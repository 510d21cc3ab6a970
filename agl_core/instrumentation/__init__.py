"""Instrumentation: LLM client calls made inside a trace context become spans.

``OtelTracer.init()`` installs it; use :func:`instrument_openai` directly only without a tracer.
"""

from agl_core.instrumentation.llm_record import StreamAccumulator, request_attributes, response_attributes
from agl_core.instrumentation.openai import instrument_openai, is_instrumented, uninstrument_openai

__all__ = [
    "StreamAccumulator",
    "instrument_openai",
    "is_instrumented",
    "request_attributes",
    "response_attributes",
    "uninstrument_openai",
]
