"""The compiled wire walk (``agl_core/store/wire_check.pyx``), the fast path of agl-server's edge
check (``agl_server.span_checks``): it may say yes only where the protobuf runtime parses the bytes,
whatever they are, and should say yes to the messages clients send.

Each test holds the walk to the runtime itself: generated messages of every request type and of
spans, the same damaged (truncated, bytes flipped, invalid UTF-8 spliced in, garbage appended),
random bytes, nesting past protobuf's limit, every way UTF-8 can be invalid, and wire forms the walk
leaves to the runtime (groups, known fields with another wire type). Where the walk is unsure,
``all_readable`` still answers as the runtime does.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import message_factory
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fuzz_messages import message_strategy
from support.fuzz_payloads import length_delimited, payload_strategy
from support.wire_spans import llm_batch, span

from agl_core.proto import store_pb2 as s
from agl_core.proto import trace_pb2 as tr
from agl_core.store.wire import varint
from agl_server import span_checks
from agl_server.span_checks import all_readable

if span_checks.WireCheck is None:
    if shutil.which("cc") is not None:
        raise AssertionError("pip install -e . should have built agl_core/store/wire_check (a C compiler is here)")
    pytest.skip("no C compiler here, so pip install built no wire walk to test", allow_module_level=True)

from agl_core.store import wire_check  # type: ignore[attr-defined]

WireCheck = span_checks.WireCheck
SERVICE = s.DESCRIPTOR.services_by_name["LightningStoreService"]
# Every request and response of the store's service, and the span as a message of its own.
_BY_NAME = {m.input_type.full_name: m.input_type for m in SERVICE.methods}
_BY_NAME |= {m.output_type.full_name: m.output_type for m in SERVICE.methods}
_BY_NAME[tr.Span.DESCRIPTOR.full_name] = tr.Span.DESCRIPTOR
DESCRIPTORS = sorted(_BY_NAME.items())
WALKS = {name: WireCheck(descriptor) for name, descriptor in DESCRIPTORS}
SPAN_NAME = 5  # Span.name, a string
ATTRIBUTES = 9  # Span.attributes
KV_VALUE = 2  # KeyValue.value
ANY_STRING, ANY_ARRAY = 1, 5  # AnyValue.string_value, AnyValue.array_value
ARRAY_VALUES = 1  # ArrayValue.values
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parses(descriptor: Any, raw: bytes) -> bool:
    """Whether the protobuf runtime parses ``raw`` as ``descriptor``'s message."""
    try:
        message_factory.GetMessageClass(descriptor).FromString(raw)
    except DecodeError:
        return False
    return True


def with_name_bytes(name: bytes) -> bytes:
    """A span whose name field holds ``name`` as it is (protobuf would refuse to build some)."""
    return span(name="").SerializeToString() + length_delimited(SPAN_NAME, name)


def test_the_walk_is_built_where_a_compiler_is() -> None:
    # An editable install builds it in place; a failed rebuild (the extension is optional) would
    # leave the last one, and these tests would hold old code to the runtime.
    source = Path(wire_check.__file__).with_name("wire_check.pyx")
    if source.exists():
        assert Path(wire_check.__file__).stat().st_mtime >= source.stat().st_mtime, (
            f"{wire_check.__file__} is older than {source}: run pip install -e . (make setup) again"
        )
    assert span_checks.edge_check() == "wire"


@SETTINGS
@given(data=st.data())
def test_a_yes_means_the_runtime_parses_the_bytes(data: st.DataObject) -> None:
    name, descriptor = data.draw(st.sampled_from(DESCRIPTORS))
    raw = data.draw(payload_strategy(descriptor))  # generated, damaged, random or nested too deep
    if WALKS[name].check(raw):
        assert parses(descriptor, raw), (name, raw)


@SETTINGS
@given(data=st.data())
def test_messages_as_clients_send_them_take_the_fast_path(data: st.DataObject) -> None:
    name, descriptor = data.draw(st.sampled_from(DESCRIPTORS))
    message = data.draw(message_strategy(descriptor))
    raw = message.SerializeToString()
    # Nested deeper than the walk follows (a Struct in a Struct...): left to the runtime.
    assert WALKS[name].check(raw) == (levels(message) <= wire_check.MAX_DEPTH), (name, raw)


def levels(message: Any) -> int:
    """How deep ``message`` nests, counting itself as 1 (map entries are messages on the wire)."""
    deepest = 0
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            inner = field.message_type.fields_by_name["value"]
            nested = [1 + (levels(v) if inner.type == inner.TYPE_MESSAGE else 0) for v in value.values()]
        else:
            nested = [levels(v) for v in (value if field.is_repeated else [value])]
        deepest = max([deepest, *nested])
    return 1 + deepest


def test_every_cut_and_flipped_byte_of_a_batch_is_a_yes_only_where_it_parses() -> None:
    raw = llm_batch()
    walk = WALKS["agl.v1.IngestSpansRequest"]
    assert walk.check(raw)
    damaged = [raw[:cut] for cut in range(len(raw))]
    damaged += [raw[:at] + bytes([raw[at] ^ xor]) + raw[at + 1 :] for at in range(len(raw)) for xor in (1, 0x80, 0xFF)]
    yes = [d for d in damaged if walk.check(d)]
    assert all(parses(s.IngestSpansRequest.DESCRIPTOR, d) for d in yes)
    # And the walk is no mere "no": many damaged batches still parse, and it takes most of those.
    parsed = [d for d in damaged if parses(s.IngestSpansRequest.DESCRIPTOR, d)]
    assert len(yes) >= 0.8 * len(parsed) > 0


@pytest.mark.parametrize(
    "bad",
    [
        b"\xc3\x28",  # a lead byte without its continuation
        b"\x80",  # a continuation byte alone
        b"\xc0\x80",  # an overlong NUL
        b"\xe0\x80\xaf",  # an overlong "/"
        b"\xed\xa0\x80",  # a surrogate (U+D800)
        b"\xf4\x90\x80\x80",  # past U+10FFFF
        b"\xf8\x88\x80\x80\x80",  # a five-byte form
        b"\xe2\x82",  # cut short
        b"\xff",
    ],
)
def test_invalid_utf8_anywhere_is_refused_as_the_runtime_refuses_it(bad: bytes) -> None:
    in_name = with_name_bytes(b"ok " + bad + b" ok")
    # Deep in a batch: a string inside an array inside an attribute of the second span.
    inner = length_delimited(ANY_STRING, b"x" + bad)
    array = length_delimited(ANY_ARRAY, length_delimited(ARRAY_VALUES, inner))
    attribute = length_delimited(1, b"k") + length_delimited(KV_VALUE, array)
    nested = span().SerializeToString() + length_delimited(ATTRIBUTES, attribute)
    batch = s.IngestSpansRequest(spans=[span()]).SerializeToString() + length_delimited(2, nested)
    for name, raw in (("agl.v1.Span", in_name), ("agl.v1.IngestSpansRequest", batch)):
        descriptor = dict(DESCRIPTORS)[name]
        assert not parses(descriptor, raw), raw
        assert not WALKS[name].check(raw), raw
    assert not all_readable([in_name]) and not all_readable([span().SerializeToString(), nested], batch)


def test_valid_utf8_of_every_length_is_taken() -> None:
    for text in ("", "a", "é", "€", "你好", "🙂", "\x00", "\U0010ffff", "a" * 1000 + "ü"):
        raw = with_name_bytes(text.encode())
        assert parses(tr.Span.DESCRIPTOR, raw) and WALKS["agl.v1.Span"].check(raw), text


def nested_arrays(levels: int) -> bytes:
    """A span whose one attribute holds arrays nested ``levels`` deep."""
    value = varint(3 << 3) + varint(7)  # AnyValue.int_value = 7
    for _ in range(levels):
        value = length_delimited(ANY_ARRAY, length_delimited(ARRAY_VALUES, value))
    return span().SerializeToString() + length_delimited(
        ATTRIBUTES, length_delimited(1, b"k") + length_delimited(KV_VALUE, value)
    )


@pytest.mark.parametrize("levels", [10, 25, 40])
def test_nesting_the_walk_does_not_follow_is_left_to_the_runtime(levels: int) -> None:
    raw = nested_arrays(levels)  # each level is two messages: the span at 1, its attribute at 2, ...
    depth = 3 + 2 * levels
    walk = WALKS["agl.v1.Span"]
    assert walk.check(raw) == (depth <= 64)
    assert all_readable([raw]) == parses(tr.Span.DESCRIPTOR, raw)
    assert all_readable([raw])  # within protobuf's 100 levels: readable, whichever answered


def test_nesting_past_protobufs_limit_is_refused() -> None:
    raw = nested_arrays(60)  # 123 levels
    assert not parses(tr.Span.DESCRIPTOR, raw) and not WALKS["agl.v1.Span"].check(raw)
    assert not all_readable([raw])


@pytest.mark.parametrize(
    ("what", "extra"),
    [
        ("a known string field as a varint", varint(SPAN_NAME << 3) + varint(5)),
        ("a known message field as fixed32", varint(ATTRIBUTES << 3 | 5) + b"\0\0\0\0"),
        ("an unknown group", varint(1000 << 3 | 3) + varint(1000 << 3 | 4)),
        ("a ten-byte varint with more than 64 bits", varint(1000 << 3) + b"\xff" * 9 + b"\x7f"),
    ],
)
def test_wire_forms_the_walk_leaves_to_the_runtime(what: str, extra: bytes) -> None:
    raw = span().SerializeToString() + extra
    assert not WALKS["agl.v1.Span"].check(raw), what
    assert all_readable([raw]) == parses(tr.Span.DESCRIPTOR, raw), what


@pytest.mark.parametrize(
    ("what", "extra"),
    [
        ("an unknown varint field", varint(1000 << 3) + varint(2**63)),
        ("an unknown field holding invalid UTF-8", length_delimited(1000, b"\xff\xfe")),
        ("an unknown fixed64", varint(1000 << 3 | 1) + b"\0" * 8),
        ("a ten-byte varint", varint(1000 << 3) + b"\xff" * 9 + b"\x01"),
        ("the attempt id appended as a second value", length_delimited(61, b"at-2")),
    ],
)
def test_what_the_runtime_takes_the_walk_takes(what: str, extra: bytes) -> None:
    raw = span().SerializeToString() + extra
    assert parses(tr.Span.DESCRIPTOR, raw), what
    assert WALKS["agl.v1.Span"].check(raw), what


@pytest.mark.parametrize(
    ("what", "raw"),
    [
        ("field number 0", varint(0 << 3) + varint(1)),
        ("a wire type that does not exist", varint(1000 << 3 | 7)),
        ("a length past the end", varint(SPAN_NAME << 3 | 2) + varint(10) + b"abc"),
        ("a varint cut short", varint(1000 << 3) + b"\x80"),
        ("an eleven-byte varint", varint(1000 << 3) + b"\xff" * 10 + b"\x01"),
        ("a fixed64 cut short", varint(1000 << 3 | 1) + b"\0" * 7),
        ("an end group alone", varint(1000 << 3 | 4)),
    ],
)
def test_malformed_wire_is_refused_by_both(what: str, raw: bytes) -> None:
    raw = span().SerializeToString() + raw
    assert not parses(tr.Span.DESCRIPTOR, raw), what
    assert not WALKS["agl.v1.Span"].check(raw), what
    assert not all_readable([raw]), what


def test_packed_and_unpacked_repeated_scalars() -> None:
    # A repeated number may come packed (one length-delimited run) or one by one; both parse.
    found = [
        (name, field)
        for name, descriptor in DESCRIPTORS
        for field in descriptor.fields
        if field.is_repeated
        and field.type in (field.TYPE_INT64, field.TYPE_INT32, field.TYPE_UINT64, field.TYPE_UINT32)
    ]
    if not found:
        pytest.skip("no message of the service has a repeated integer field")
    name, field = found[0]
    descriptor = dict(DESCRIPTORS)[name]
    packed = length_delimited(field.number, varint(1) + varint(300) + varint(2**40))
    unpacked = varint(field.number << 3) + varint(5)
    cut = length_delimited(field.number, varint(1) + b"\x80")
    for raw, ok in ((packed, True), (unpacked, True), (packed + unpacked, True), (cut, False)):
        assert parses(descriptor, raw) == ok, (name, raw)
        assert WALKS[name].check(raw) == ok, (name, raw)


def test_each_span_alone() -> None:
    good, bad = span().SerializeToString(), with_name_bytes(b"\xff")
    walk = WALKS["agl.v1.Span"]
    assert walk.check_each([good, good]) and not walk.check_each([good, bad])
    assert all_readable([good, good]) and not all_readable([good, bad])


def test_an_unknown_edge_check_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="edge_check='fast': give 'wire' or 'parse'"):
        span_checks.edge_check("fast")


def test_the_parse_alone_answers_the_same() -> None:
    batch, bad = llm_batch(), with_name_bytes(b"\xed\xa0\x80")
    try:
        assert span_checks.use_edge_check("parse") == "parse" == span_checks.edge_check_in_use()
        assert all_readable([], batch) and not all_readable([bad])
    finally:
        assert span_checks.use_edge_check("wire") == "wire" == span_checks.edge_check_in_use()
    assert all_readable([], batch) and not all_readable([bad])
