"""OTLP/JSON to the OTLP protobuf request: the protobuf JSON mapping, except for ids.

OTLP/JSON follows protobuf's JSON mapping with one exception: trace and span ids are hex strings,
not base64 (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding). The ids are turned
into base64 first, then ``google.protobuf.json_format`` parses the document into opentelemetry-proto's
``ExportTraceServiceRequest`` (unknown fields ignored, as the spec asks of receivers).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

# Field names as OTLP/JSON writes them, and as protobuf's JSON parser also accepts them.
_SPAN_IDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
_LINK_IDS = ("traceId", "spanId", "trace_id", "span_id")


class OtlpJsonError(ValueError):
    """The body is not an OTLP/JSON ExportTraceServiceRequest; the message says where and why."""


def _items(parent: dict[str, Any], names: tuple[str, str], where: str) -> list[tuple[str, dict[str, Any]]]:
    for name in names:
        if name in parent:
            value = parent[name]
            if not isinstance(value, list):
                raise OtlpJsonError(f"{where}.{name} must be a JSON array")
            out = []
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    raise OtlpJsonError(f"{where}.{name}[{i}] must be a JSON object")
                out.append((f"{where}.{name}[{i}]", item))
            return out
    return []


def _hex_to_base64(obj: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise OtlpJsonError(f"{where}.{key} must be a hex string, not {type(value).__name__}")
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise OtlpJsonError(
                f"{where}.{key} is {value[:40]!r}, not hex; OTLP/JSON writes trace and span ids as hex strings "
                "(32 and 16 hex digits), not base64"
            ) from None
        obj[key] = base64.b64encode(raw).decode()


def parse_otlp_json(body: bytes) -> bytes:
    """The serialized ``ExportTraceServiceRequest`` an OTLP/JSON body stands for."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OtlpJsonError(f"the body is not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise OtlpJsonError("the body must be a JSON object with a resourceSpans array (OTLP/JSON)")
    for rs_where, resource_spans in _items(document, ("resourceSpans", "resource_spans"), "$"):
        for ss_where, scope_spans in _items(resource_spans, ("scopeSpans", "scope_spans"), rs_where):
            for span_where, span in _items(scope_spans, ("spans", "spans"), ss_where):
                _hex_to_base64(span, _SPAN_IDS, span_where)
                for link_where, link in _items(span, ("links", "links"), span_where):
                    _hex_to_base64(link, _LINK_IDS, link_where)
    request = trace_service_pb2.ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, RecursionError) as exc:
        raise OtlpJsonError(f"the body is not an OTLP/JSON ExportTraceServiceRequest: {exc}") from None
    return request.SerializeToString()


def response_json(response: Any) -> str:
    """An ExportTraceServiceResponse as OTLP/JSON (lowerCamelCase names)."""
    return json_format.MessageToJson(response, indent=None)
