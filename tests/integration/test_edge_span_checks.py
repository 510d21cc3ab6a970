"""The span checks at agl-server's edge (issue 11, items 2 and 3), each against a real agl-server:
spans every client can read back, and OTLP exports that would expand too far in memory.

Every bad request gets a precise status and leaves stored data as it was: the ``seeded`` fixture
(conftest.py) checks that after each test.
"""

from __future__ import annotations

from edge_steps import INVALID, STORE, Code, drain, expect, one_item
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2 as otlp_trace_pb2

from agl_core.proto import store_pb2 as s
from agl_core.proto import trace_pb2
from agl_core.store.wire import varint

# --- 2. spans every client can read back -------------------------------------------------------


def _raw_span(rollout_id: str, attempt_id: str, name: str, span_id: bytes) -> bytes:
    return trace_pb2.Span(name=name, rollout_id=rollout_id, attempt_id=attempt_id, span_id=span_id).SerializeToString()


def _bad_utf8(raw: bytes, marker: bytes) -> bytes:
    """``raw`` with the 2-byte string ``marker`` replaced by the invalid UTF-8 bytes c3 28."""
    assert len(marker) == 2 and raw.count(marker) == 1
    return raw.replace(marker, b"\xc3\x28")


def _nested_span(rollout_id: str, attempt_id: str, lists: int, arrays: int) -> trace_pb2.Span:
    """Attributes nested 3 messages per kvlist and 2 per array level, to hit any depth."""
    span = trace_pb2.Span(name="deep", rollout_id=rollout_id, attempt_id=attempt_id, span_id=b"deep0001")
    value = span.attributes.add(key="k").value
    for _ in range(lists):
        value = value.kvlist_value.values.add(key="k").value
    for _ in range(arrays):
        value = value.array_value.values.add()
    value.string_value = "leaf"
    return span


async def test_spans_with_invalid_utf8_are_rejected_alone(channel, seeded) -> None:  # type: ignore[no-untyped-def]
    store, rollout_id, attempt_id = seeded
    good = _raw_span(rollout_id, attempt_id, "good", b"good0001")
    bad_name = _bad_utf8(_raw_span(rollout_id, attempt_id, "XY", b"bad00001"), b"XY")
    attr = trace_pb2.Span(name="attr", rollout_id=rollout_id, attempt_id=attempt_id, span_id=b"bad00002")
    attr.attributes.add(key="QZ").value.string_value = "v"
    event = trace_pb2.Span(name="event", rollout_id=rollout_id, attempt_id=attempt_id, span_id=b"bad00003")
    event.events.add(name="QZ")
    resource = trace_pb2.Span(name="res", rollout_id=rollout_id, attempt_id=attempt_id, span_id=b"bad00004")
    resource.resource.attributes.add(key="service.name").value.string_value = "QZ"
    also_good = _raw_span(rollout_id, attempt_id, "good2", b"good0002")
    raws = [
        good,
        bad_name,
        _bad_utf8(attr.SerializeToString(), b"QZ"),
        _bad_utf8(event.SerializeToString(), b"QZ"),
        _bad_utf8(resource.SerializeToString(), b"QZ"),
        also_good,
    ]
    # Nesting that parses as a Span but not inside the QuerySpansResponse a reader gets.
    deep = next(
        raw
        for raw in (
            _nested_span(rollout_id, attempt_id, n, m).SerializeToString() for n in range(28, 34) for m in (0, 1)
        )
        if _parses(raw, trace_pb2.Span) and not _parses(_wrapped(raw), s.QuerySpansResponse)
    )
    raws.append(deep)

    call = channel.stream_stream(
        f"{STORE}/IngestSpans", request_serializer=None, response_deserializer=s.IngestSpansResponse.FromString
    )
    responses = await drain(call(one_item(raw_ingest_request(9, raws))))
    (response,) = responses
    assert response.batch_id == 9 and response.accepted == 2
    assert [e.index for e in response.rejected] == [1, 2, 3, 4, 6]
    assert all(e.code == INVALID.value[0] for e in response.rejected)
    assert "UTF-8" in response.rejected[0].message and response.rejected[0].message.startswith("spans[1]")
    # Everything acknowledged reads back, through the typed client too.
    names = [sp.name for sp in await store.query_spans(rollout_id)]
    assert names == ["s0", "s1", "s2", "good", "good2"]


def _parses(raw: bytes, cls: type) -> bool:
    try:
        cls.FromString(raw)
    except Exception:
        return False
    return True


def _wrapped(raw: bytes) -> bytes:
    return b"\x0a" + varint(len(raw)) + raw  # QuerySpansResponse.spans = 1


def raw_ingest_request(batch_id: int, raws: list[bytes]) -> bytes:
    body = b"\x08" + varint(batch_id)
    return body + b"".join(b"\x12" + varint(len(raw)) + raw for raw in raws)


async def test_otlp_export_with_invalid_utf8_is_refused_whole(channel, seeded) -> None:  # type: ignore[no-untyped-def]
    _, rollout_id, _ = seeded
    request = trace_service_pb2.ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add()
    span = spans.spans.add(name="XY", span_id=b"otlp0001", trace_id=b"t" * 16)
    span.attributes.add(key="agl.rollout_id", value=common_pb2.AnyValue(string_value=rollout_id))
    raw = _bad_utf8(request.SerializeToString(), b"XY")
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export", request_serializer=None)
    await expect(export(raw), INVALID, "could not be decoded", "UTF-8")


# --- 3. OTLP Export memory ---------------------------------------------------------------------


def _export_request(rollout_id: str, resource_bytes: int, spans: int) -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="agl.rollout_id", value=common_pb2.AnyValue(string_value=rollout_id))
    resource_spans.resource.attributes.add(key="blob", value=common_pb2.AnyValue(string_value="r" * resource_bytes))
    scope = resource_spans.scope_spans.add()
    for i in range(spans):
        scope.spans.append(otlp_trace_pb2.Span(name=f"e{i}", span_id=i.to_bytes(8, "big"), trace_id=b"t" * 16))
    return request


async def test_otlp_export_that_would_expand_too_far_is_resource_exhausted(channel, seeded) -> None:  # type: ignore[no-untyped-def]
    store, rollout_id, _ = seeded
    otlp = trace_service_pb2_grpc.TraceServiceStub(channel)
    # The request: a 1 MB resource shared by 5,000 spans (5 GB once copied into each).
    huge = _export_request(rollout_id, 1_000_000, 5000)
    error = await expect(otlp.Export(huge, timeout=60), Code.RESOURCE_EXHAUSTED, "MiB", "fewer spans per request")
    assert error.code() != Code.UNAVAILABLE
    assert len(await store.query_spans(rollout_id)) == 3  # nothing stored

    # A large resource over many spans within the limit is stored in chunks, each span with it.
    fine = _export_request(rollout_id, 40_000, 300)  # about 12 MB expanded: three chunks
    response = await otlp.Export(fine, timeout=60)
    assert not response.partial_success.rejected_spans
    spans = await store.query_spans(rollout_id)
    assert len(spans) == 3 + 300
    blobs = {kv.value.string_value for sp in spans[3:] for kv in sp.resource.attributes if kv.key == "blob"}
    assert blobs == {"r" * 40_000}
