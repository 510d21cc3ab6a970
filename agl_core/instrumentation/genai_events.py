"""GenAI events sent through the OpenTelemetry logs API, put back on the span they describe.

Some instrumentations (OpenTelemetry contrib's openai-v2 among them) write an LLM call's messages
not as span attributes but as *events* through the logs API (``gen_ai.user.message``,
``gen_ai.choice``, ...: GenAI semantic conventions v1.28 to v1.36). agl collects spans, not logs,
so the logger provider below turns each such event into a span event of the span current when it
was emitted (the LLM call's), its body fields as event attributes (structures as JSON strings).
The adapters read them from there (:mod:`agl_core.adapter.conventions`, form 3).
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor


def _attribute(value: Any) -> Any:
    if isinstance(value, str | bool | int | float):
        return value
    return json.dumps(value, default=str)


class SpanEventsProcessor(LogRecordProcessor):
    """Copies ``gen_ai.*`` log events onto the current span as span events."""

    def on_emit(self, log_record: Any) -> None:
        record = getattr(log_record, "log_record", log_record)
        name = getattr(record, "event_name", None) or (record.attributes or {}).get("event.name")
        if not isinstance(name, str) or not name.startswith("gen_ai."):
            return
        span = trace.get_current_span()
        if not span.is_recording():
            return
        body = record.body if isinstance(record.body, dict) else {}
        attributes = {key: _attribute(value) for key, value in body.items() if value is not None}
        span.add_event(name, attributes=attributes, timestamp=record.timestamp)

    def emit(self, log_record: Any) -> None:  # the processor method's name in some SDK versions
        self.on_emit(log_record)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_provider: LoggerProvider | None = None


def events_logger_provider() -> LoggerProvider:
    """The process's logger provider for instrumentations whose GenAI events agl collects."""
    global _provider
    if _provider is None:
        _provider = LoggerProvider()
        _provider.add_log_record_processor(SpanEventsProcessor())
    return _provider
