"""The span-id check on a batch's wire bytes (``agl_core/store/span_id_check.pyx``, through
``agl_core.store.validation``), held to the protobuf runtime's parse of the spans' headers: whether
every span has ids the store can place (``batch_span_ids_well_formed``), and what the store reads of
each span to place it (``batch_span_places``), on generated, damaged and random batches and on the
wire forms a parse refuses or reads otherwise."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fuzz_payloads import length_delimited, payload_strategy
from support.wire_spans import llm_batch, span

from agl_core.proto import store_pb2 as s
from agl_core.proto import trace_pb2 as tr
from agl_core.store import validation
from agl_core.store.wire import span_headers, varint

if validation.batch_span_places(b"") is None:
    if shutil.which("cc") is not None:
        raise AssertionError("pip install -e . should have built agl_core/store/span_id_check (a C compiler is here)")
    pytest.skip("no C compiler here, so pip install built no span-id check to test", allow_module_level=True)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- SpanIdCheck: whether every span of a batch has ids the store can place -------------------

_ID = st.one_of(
    st.sampled_from(["", "a", "r" * 200, "r" * 201, "é" * 100, "é" * 101, "latest", "\U0001f642" * 50]),
    st.text(max_size=60),
)
_BYTES_ID = st.one_of(st.sampled_from([b"", b"\x01", b"\x01" * 16, b"\x01" * 17]), st.binary(max_size=20))
_SEQUENCE = st.one_of(st.sampled_from([0, 1, -1, 2**53 - 1, 2**53, 2**63 - 1, -(2**63)]), st.integers(0, 10))


@st.composite
def span_bytes(draw: st.DrawFn) -> bytes:
    """A span with any ids, sometimes a field sent twice (the last value counts) or with a field
    the header does not read."""
    raw = tr.Span(
        rollout_id=draw(_ID),
        attempt_id=draw(_ID),
        span_id=draw(_BYTES_ID),
        trace_id=draw(_BYTES_ID),
        sequence_id=draw(_SEQUENCE),
        name=draw(st.text(max_size=5)),
    ).SerializeToString()
    for _ in range(draw(st.integers(0, 2))):
        again = tr.Span(rollout_id=draw(_ID), span_id=draw(_BYTES_ID), sequence_id=draw(_SEQUENCE)).SerializeToString()
        raw += again
    return raw


@SETTINGS
@given(spans=st.lists(span_bytes(), max_size=6), batch_id=st.integers(0, 2**40))
def test_batch_ids_check_agrees_with_each_headers_check(spans: list[bytes], batch_id: int) -> None:
    whole = s.IngestSpansRequest(batch_id=batch_id).SerializeToString()
    whole += b"".join(length_delimited(2, raw) for raw in spans)
    headers = span_headers(spans, whole)
    assert headers is not None and len(headers) == len(spans)
    each = all(validation.span_ids_well_formed(header) for header in headers)
    assert validation.batch_span_ids_well_formed(whole) == each


@pytest.mark.parametrize(
    ("what", "extra"),
    [
        ("the sequence id as fixed64", varint(62 << 3 | 1) + b"\0" * 8),
        ("the rollout id as a varint", varint(60 << 3) + varint(1)),
        ("a group", varint(1000 << 3 | 3) + varint(1000 << 3 | 4)),
    ],
)
def test_batch_ids_check_leaves_odd_wire_forms_to_the_headers(what: str, extra: bytes) -> None:
    raw = span().SerializeToString() + extra
    whole = length_delimited(2, raw)
    assert not validation.batch_span_ids_well_formed(whole), what


@SETTINGS
@given(data=st.data())
def test_batch_ids_check_on_any_bytes_says_yes_only_where_every_header_passes(data: st.DataObject) -> None:
    raw = data.draw(payload_strategy(s.IngestSpansRequest.DESCRIPTOR))  # generated, damaged or random
    if validation.batch_span_ids_well_formed(raw):
        headers = span_headers([], raw)
        if headers is not None:  # bytes that do not parse never reach it in the store
            assert all(validation.span_ids_well_formed(header) for header in headers), raw


# --- SpanIdCheck.headers: what the store reads of each span to place it, from the bytes --------


def _fields(header: Any) -> tuple[str, str, bytes, int, bool]:
    return header.rollout_id, header.attempt_id, header.span_id, header.sequence_id, bool(header.resource)


def _batch(spans: list[bytes], batch_id: int = 0) -> bytes:
    return s.IngestSpansRequest(batch_id=batch_id).SerializeToString() + b"".join(
        length_delimited(2, raw) for raw in spans
    )


@SETTINGS
@given(spans=st.lists(span_bytes(), max_size=6), batch_id=st.integers(0, 2**40), resources=st.data())
def test_span_places_are_the_parsed_headers_where_every_id_passes(
    spans: list[bytes], batch_id: int, resources: st.DataObject
) -> None:
    # Some spans with an OTLP resource, sent once or twice (a header keeps every value).
    resource = tr.Span(resource={"attributes": [{"key": "service.name"}]}).SerializeToString()
    spans = [raw + resource * resources.draw(st.integers(0, 2)) for raw in spans]
    whole = _batch(spans, batch_id)
    headers = span_headers(spans, whole)
    assert headers is not None and len(headers) == len(spans)
    places = validation.batch_span_places(whole)
    if all(validation.span_ids_well_formed(header) for header in headers):
        assert places is not None
        assert [_fields(place) for place in places] == [_fields(header) for header in headers]
    else:
        assert places is None


@SETTINGS
@given(data=st.data())
def test_span_places_on_any_bytes_only_where_the_headers_parse_the_same(data: st.DataObject) -> None:
    raw = data.draw(payload_strategy(s.IngestSpansRequest.DESCRIPTOR))  # generated, damaged or random
    places = validation.batch_span_places(raw)
    if places is not None:
        headers = span_headers([], raw)
        assert headers is not None, raw  # unlike the check alone, it is never asked of bytes that do not parse
        assert [_fields(place) for place in places] == [_fields(header) for header in headers], raw
        assert all(validation.span_ids_well_formed(header) for header in headers), raw


def test_every_cut_and_flipped_byte_of_a_batch_gives_its_places_only_where_its_headers_parse_alike() -> None:
    resource = tr.Span(resource={"attributes": [{"key": "service.name"}]}).SerializeToString()
    spans = list(s.IngestSpansRequest.FromString(llm_batch()).spans)
    raw = _batch([spans[0].SerializeToString() + resource, spans[1].SerializeToString()], 7)
    assert validation.batch_span_places(raw) is not None
    damaged = [raw[:cut] for cut in range(len(raw))]
    damaged += [raw[:at] + bytes([raw[at] ^ xor]) + raw[at + 1 :] for at in range(len(raw)) for xor in (1, 0x80, 0xFF)]
    taken = 0
    for d in damaged:
        places = validation.batch_span_places(d)
        if places:
            taken += 1
            headers = span_headers([], d)
            assert headers is not None, d
            assert [_fields(place) for place in places] == [_fields(header) for header in headers], d
    # Many damaged batches keep ids the store can place (a flipped byte of a name or a token id).
    assert taken > len(damaged) // 4


@pytest.mark.parametrize(
    ("what", "extra"),
    [
        ("field number 0", varint(0 << 3) + varint(1)),
        ("a tag past 32 bits", b"\xff\xff\xff\xff\x7f" + varint(1)),
        ("an earlier rollout id that is not UTF-8", length_delimited(60, b"\xff") + length_delimited(60, b"ro-1")),
        ("an earlier attempt id that is not UTF-8", length_delimited(61, b"\xc0\x80") + length_delimited(61, b"at")),
        ("the resource as a varint", varint(50 << 3) + varint(7)),
        ("the span id as a varint", varint(2 << 3) + varint(1)),
        ("a group", varint(1000 << 3 | 3) + varint(1000 << 3 | 4)),
    ],
)
def test_span_places_leave_what_a_parse_refuses_or_reads_otherwise_to_it(what: str, extra: bytes) -> None:
    raw = extra + span().SerializeToString()  # the span's own ids come last, so they are the ones kept
    assert validation.batch_span_places(length_delimited(2, raw)) is None, what
    # The same anywhere in the request, outside the spans, where it can also make a parse fail.
    if what in ("field number 0", "a tag past 32 bits", "a group"):
        whole = extra + length_delimited(2, span().SerializeToString())
        assert validation.batch_span_places(whole) is None, what


def test_span_places_keep_the_last_value_of_each_id_and_share_equal_ids() -> None:
    first = tr.Span(rollout_id="ro-é", attempt_id="at-1", span_id=b"\x01" * 8, sequence_id=3).SerializeToString()
    again = tr.Span(rollout_id="ro-2", span_id=b"\x09", sequence_id=5).SerializeToString()
    whole = _batch([first + again, first])
    places = validation.batch_span_places(whole)
    assert places is not None
    assert [_fields(p) for p in places] == [
        ("ro-2", "at-1", b"\x09", 5, False),
        ("ro-é", "at-1", b"\x01" * 8, 3, False),
    ]
    assert places[0].attempt_id is places[1].attempt_id  # decoded once for the batch
    assert validation.batch_span_places(b"") == []
