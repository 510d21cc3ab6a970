"""Finished OpenTelemetry SDK spans as ``agl.v1.Span`` messages.

The conversion is direct (attribute by attribute into the message) rather than through the OTLP
exporter's encoder and a re-parse: both build the same message, but the direct path skips the
intermediate OTLP objects; ``bench/tracing_bench.py`` measured it 2 to 4 times faster.
Resources and scopes repeat on every span, so their messages are built once and copied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, StatusCode

from agl_core.proto import trace_pb2
from agl_core.types.values import set_attributes

# OTLP span flags: the low byte carries the W3C trace flags, bit 8 says whether bit 9 (the parent
# is remote) is known.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200

_STATUS = {
    StatusCode.UNSET: trace_pb2.SPAN_STATUS_CODE_UNSPECIFIED,
    StatusCode.OK: trace_pb2.SPAN_STATUS_CODE_OK,
    StatusCode.ERROR: trace_pb2.SPAN_STATUS_CODE_ERROR,
}

_resource_cache: dict[int, tuple[Resource, trace_pb2.SpanResource]] = {}
_scope_cache: dict[int, tuple[InstrumentationScope, trace_pb2.InstrumentationScope]] = {}


def _resource_pb(resource: Resource) -> trace_pb2.SpanResource:
    cached = _resource_cache.get(id(resource))
    if cached is not None and cached[0] is resource:
        return cached[1]
    message = trace_pb2.SpanResource()
    set_attributes(message, resource.attributes)
    if len(_resource_cache) > 64:  # resources are few and long-lived; this only guards against churn
        _resource_cache.clear()
    _resource_cache[id(resource)] = (resource, message)
    return message


def _scope_pb(scope: InstrumentationScope) -> trace_pb2.InstrumentationScope:
    cached = _scope_cache.get(id(scope))
    if cached is not None and cached[0] is scope:
        return cached[1]
    message = trace_pb2.InstrumentationScope(name=scope.name, version=scope.version or "")
    if scope.attributes:
        set_attributes(message, scope.attributes)
    if len(_scope_cache) > 256:
        _scope_cache.clear()
    _scope_cache[id(scope)] = (scope, message)
    return message


def _flags(context: SpanContext, parent: SpanContext | None) -> int:
    """W3C trace flags of ``context``, and whether ``parent`` (for a link: the linked span) is remote."""
    flags = (int(context.trace_flags) & 0xFF) | _HAS_IS_REMOTE
    if parent is not None and parent.is_remote:
        flags |= _IS_REMOTE
    return flags


def to_span(span: ReadableSpan, rollout_id: str = "", attempt_id: str = "") -> trace_pb2.Span:
    """Convert a finished SDK span to an ``agl.v1.Span`` of ``rollout_id``/``attempt_id``."""
    context = span.context
    parent = span.parent
    message = trace_pb2.Span(
        trace_id=context.trace_id.to_bytes(16, "big"),
        span_id=context.span_id.to_bytes(8, "big"),
        parent_span_id=parent.span_id.to_bytes(8, "big") if parent is not None else b"",
        name=span.name,
        kind=span.kind.value + 1,  # the API counts from INTERNAL = 0, OTLP from UNSPECIFIED = 0
        start_time_unix_nano=span.start_time or 0,
        end_time_unix_nano=span.end_time or 0,
        flags=_flags(context, parent),
        rollout_id=rollout_id,
        attempt_id=attempt_id,
    )
    trace_state = context.trace_state
    if trace_state:
        message.trace_state = trace_state.to_header()
    attributes: Mapping[str, Any] | None = span._attributes  # the mapping itself: no read-only copy
    if attributes:
        set_attributes(message, attributes)
    if span.dropped_attributes:
        message.dropped_attributes_count = span.dropped_attributes
    for event in span._events:
        pb_event = message.events.add(name=event.name, time_unix_nano=event.timestamp)
        if event.attributes:
            set_attributes(pb_event, event.attributes)
    if span.dropped_events:
        message.dropped_events_count = span.dropped_events
    for link in span._links:
        pb_link = message.links.add(
            trace_id=link.context.trace_id.to_bytes(16, "big"),
            span_id=link.context.span_id.to_bytes(8, "big"),
            flags=_flags(link.context, link.context),
        )
        if link.context.trace_state:
            pb_link.trace_state = link.context.trace_state.to_header()
        if link.attributes:
            set_attributes(pb_link, link.attributes)
    if span.dropped_links:
        message.dropped_links_count = span.dropped_links
    status = span.status
    message.status.SetInParent()  # present even when unset, as OTLP encoders write it
    if status.status_code is not StatusCode.UNSET:
        message.status.code = _STATUS[status.status_code]
        if status.description:
            message.status.message = status.description
    message.resource.CopyFrom(_resource_pb(span.resource))
    scope = span.instrumentation_scope
    if scope is not None:
        message.scope.CopyFrom(_scope_pb(scope))
    return message


__all__ = ["to_span"]
