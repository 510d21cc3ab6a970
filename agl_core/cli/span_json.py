"""A stored span as a JSON object (``agl rollouts spans --json``, ``agl export``, ``watch --spans``).

Ids are lower-case hex (as OTLP/JSON writes them), times are integer Unix nanoseconds as stored,
attributes are plain JSON values, statuses and kinds are lower-case names.
"""

from __future__ import annotations

from typing import Any

from agl_core.proto import trace_pb2
from agl_core.types.values import from_any_value


def _attributes(values: Any) -> dict[str, Any]:
    return {kv.key: from_any_value(kv.value) for kv in values}


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    return enum.Name(value).removeprefix(prefix).lower()


def span_to_dict(span: trace_pb2.Span) -> dict[str, Any]:
    return {
        "rollout_id": span.rollout_id,
        "attempt_id": span.attempt_id,
        "sequence_id": span.sequence_id,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex() or None,
        "name": span.name,
        "span_kind": _enum_name(trace_pb2.SpanKind, span.kind, "SPAN_KIND_"),
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "attributes": _attributes(span.attributes),
        "status": {
            "code": _enum_name(trace_pb2.SpanStatusCode, span.status.code, "SPAN_STATUS_CODE_"),
            "message": span.status.message,
        },
        "events": [
            {"name": e.name, "time_unix_nano": e.time_unix_nano, "attributes": _attributes(e.attributes)}
            for e in span.events
        ],
        "links": [
            {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(), "attributes": _attributes(link.attributes)}
            for link in span.links
        ],
        "resource": _attributes(span.resource.attributes),
        "scope": {"name": span.scope.name, "version": span.scope.version},
    }
