"""Spans are the protobuf ``agl.v1.Span`` message itself (OTLP-shaped), never converted.

Spans are the bulk of what the store holds and moves, so they stay in their wire form from the
tracer to the disk and back; these helpers make them pleasant to build and read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from agl_core.proto.trace_pb2 import Span, SpanKind, SpanStatusCode
from agl_core.types.values import attributes_dict, set_attributes

__all__ = ["Span", "SpanKind", "SpanStatusCode", "new_span", "random_span_id", "random_trace_id", "span_attributes"]


def random_trace_id() -> bytes:
    return os.urandom(16)


def random_span_id() -> bytes:
    return os.urandom(8)


def new_span(
    name: str,
    *,
    rollout_id: str,
    attempt_id: str,
    attributes: Mapping[str, Any] | None = None,
    trace_id: bytes | None = None,
    span_id: bytes | None = None,
    parent_span_id: bytes | None = None,
    start_time_unix_nano: int | None = None,
    end_time_unix_nano: int | None = None,
    kind: int = SpanKind.SPAN_KIND_INTERNAL,
    sequence_id: int = 0,
) -> Span:
    """Build a span for ``rollout_id``/``attempt_id``; ids and times default to fresh values."""
    now = time.time_ns()
    span = Span(
        name=name,
        rollout_id=rollout_id,
        attempt_id=attempt_id,
        trace_id=trace_id or random_trace_id(),
        span_id=span_id or random_span_id(),
        parent_span_id=parent_span_id or b"",
        start_time_unix_nano=start_time_unix_nano if start_time_unix_nano is not None else now,
        end_time_unix_nano=end_time_unix_nano if end_time_unix_nano is not None else now,
        kind=kind,
        sequence_id=sequence_id,
    )
    if attributes:
        set_attributes(span, attributes)
    return span


def span_attributes(span: Span) -> dict[str, Any]:
    """The span's attributes as a dict."""
    return attributes_dict(span)
