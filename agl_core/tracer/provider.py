"""The OpenTelemetry side of agl's tracing: one span processor on the process's tracer provider.

:func:`install` puts :class:`AglSpanProcessor` on the provider once per process (agl's own provider
if none is set, the user's SDK provider otherwise); :class:`~agl_core.tracer.otel.OtelTracer` calls
it. The processor hands each span that ends inside a trace context to that context's collector.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from agl_core.tracer import context as agl_context
from agl_core.tracer.convert import to_span
from agl_core.tracer.delivery import TraceCollector

logger = logging.getLogger(__name__)


class AglSpanProcessor(SpanProcessor):
    """Routes each span that starts inside a trace context to that context's collector.

    One processor serves every :class:`OtelTracer` of the process: spans find their trace context
    through the OpenTelemetry context they start in, not through the tracer object.
    """

    def __init__(self) -> None:
        self._owners: dict[int, TraceCollector] = {}

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        collector = agl_context.collector_for(parent_context, span.parent)
        if collector is not None:
            self._owners[span.context.span_id] = collector

    def on_end(self, span: ReadableSpan) -> None:
        collector = self._owners.pop(span.context.span_id, None)
        if collector is None:
            return
        try:
            collector.add(to_span(span, collector.rollout_id, collector.attempt_id))
        except Exception:  # a tracing failure must never break the agent
            logger.exception("could not record span %r of rollout %r", span.name, collector.rollout_id)

    @property
    def open_spans(self) -> int:
        """Spans started inside trace contexts that have not ended yet."""
        return len(self._owners)

    def shutdown(self) -> None:
        self._owners.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_install_lock = threading.Lock()
_processor: AglSpanProcessor | None = None
_provider: TracerProvider | None = None


def install(resource_attributes: Mapping[str, Any] | None = None) -> TracerProvider:
    """Put the agl span processor on the process's tracer provider (once) and return the provider.

    If no tracer provider is set, agl's own becomes the global one (service name ``agl-agent``
    unless ``resource_attributes`` say otherwise). If an SDK provider is set, the processor joins
    it. If some other provider is set, agl keeps a private provider: agl's own spans (LLM calls,
    emitters) are recorded, other instrumentations' spans are not.
    """
    global _processor, _provider
    with _install_lock:
        if _provider is not None:
            return _provider
        processor = AglSpanProcessor()
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            provider = current
        else:
            attributes = {"service.name": "agl-agent", **(resource_attributes or {})}
            provider = TracerProvider(resource=Resource.create(attributes))
            if isinstance(current, trace.ProxyTracerProvider):
                trace.set_tracer_provider(provider)
            else:
                logger.warning(
                    "the global OpenTelemetry tracer provider is a %s, not an SDK provider; agl "
                    "records its own "
                    "spans through a private provider, and spans of other instrumentations are not recorded",
                    type(current).__name__,
                )
        provider.add_span_processor(processor)
        _processor, _provider = processor, provider
        return provider


def installed_processor() -> AglSpanProcessor | None:
    return _processor
