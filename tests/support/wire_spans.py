"""Spans and batches as the wire-walk tests send them (``test_wire_check``, ``test_span_id_check``)."""

from __future__ import annotations

from typing import Any

from agl_core.proto import store_pb2 as s
from agl_core.proto import trace_pb2 as tr


def span(name: str = "step", **fields: Any) -> tr.Span:
    return tr.Span(
        rollout_id="ro-1", attempt_id="at-1", span_id=b"\x01" * 8, trace_id=b"\x02" * 16, name=name, **fields
    )


def llm_batch() -> bytes:
    """A batch like the ones agents send: two spans with text and token-id arrays."""
    spans = []
    for i in range(2):
        value = tr.AnyValue()
        value.array_value.values.extend(tr.AnyValue(int_value=t) for t in range(i, i + 30))
        attributes = [
            tr.KeyValue(key="gen_ai.request.model", value=tr.AnyValue(string_value="tiny")),
            tr.KeyValue(key="agl.llm.response", value=tr.AnyValue(string_value="héllo wörld, 你好 🙂")),
            tr.KeyValue(key="agl.llm.prompt_token_ids", value=value),
        ]
        spans.append(span(f"llm {i}", attributes=attributes, sequence_id=i + 1))
    return s.IngestSpansRequest(batch_id=7, spans=spans).SerializeToString()
