"""Wire-level views of agl.v1 messages for the span hot path.

Spans are stored exactly as they arrive. Instead of parsing a whole ``IngestSpansRequest`` and
serializing every span again, the server reads the request through a wire-compatible view whose
``spans`` field is ``repeated bytes`` (a length-delimited field has the same encoding whether it
holds a message or bytes), and parses each span only far enough to place it (:class:`SpanHeader`:
ids, sequence id, and the OTLP resource if the span has one). A sequence id the store assigns is
appended to the stored bytes as one more field 62, and a span sent to the attempt "latest" gets
the attempt's real id appended as one more field 61: protobuf parsers take the last value of a
repeated scalar field.

The views are built from descriptors at import time, so no extra .proto file drifts from the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_BYTES = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
_STRING = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
_INT64 = descriptor_pb2.FieldDescriptorProto.TYPE_INT64
_OPTIONAL = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE


def _build() -> tuple[Any, Any, Any]:
    file = descriptor_pb2.FileDescriptorProto(name="agl/v1/internal_wire.proto", package="agl.v1.wire", syntax="proto3")
    request = file.message_type.add(name="IngestSpansRequestView")
    request.field.add(name="batch_id", number=1, type=_INT64, label=_OPTIONAL)
    request.field.add(name="spans", number=2, type=_BYTES, label=_REPEATED)
    header = file.message_type.add(name="SpanHeader")
    for name, number, kind in (
        ("trace_id", 1, _BYTES),
        ("span_id", 2, _BYTES),
        ("rollout_id", 60, _STRING),
        ("attempt_id", 61, _STRING),
        ("sequence_id", 62, _INT64),
    ):
        header.field.add(name=name, number=number, type=kind, label=_OPTIONAL)
    # The OTLP resource (Span field 50, see ``lmdb/span_resources.py``): parsed here so the store
    # knows which spans carry one without searching every span's bytes for the field's tag.
    header.field.add(name="resource", number=50, type=_BYTES, label=_REPEATED)
    # The spans of an IngestSpansRequest as headers: a whole batch's headers in one parse.
    batch = file.message_type.add(name="SpanHeaderBatch")
    batch.field.add(name="spans", number=2, type=_MESSAGE, label=_REPEATED, type_name=".agl.v1.wire.SpanHeader")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("agl.v1.wire.IngestSpansRequestView")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("agl.v1.wire.SpanHeader")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("agl.v1.wire.SpanHeaderBatch")),
    )


IngestSpansRequestView, SpanHeader, _SpanHeaderBatch = _build()


def span_headers(raws: Sequence[bytes], whole: bytes | None = None) -> Sequence[Any] | None:
    """The :class:`SpanHeader` of every span in ``raws``, parsed in one call into the protobuf
    runtime (a Python call per span cost about a third more); None if any span does not parse,
    and the caller then parses them one by one to say which.

    ``whole``: the serialized IngestSpansRequest that carried exactly these spans, parsed as it is
    (0.1 us per 1 KB span) instead of wrapping the spans in a new one first (1.3 us)."""
    try:
        if whole is None:
            whole = IngestSpansRequestView(spans=raws).SerializeToString()
        return _SpanHeaderBatch.FromString(whole).spans
    except Exception:
        return None


_SEQUENCE_TAG = bytes([(62 << 3) & 0x7F | 0x80, (62 << 3) >> 7])  # field 62, varint
_ATTEMPT_TAG = bytes([(61 << 3 | 2) & 0x7F | 0x80, (61 << 3 | 2) >> 7])  # field 61, length-delimited


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def attempt_id_field(attempt_id: str) -> bytes:
    """A span's ``attempt_id`` field (61) holding ``attempt_id``: appended to a span's bytes, it
    replaces the id the span was sent with (last value wins), as for a span sent as "latest"."""
    text = attempt_id.encode()
    return _ATTEMPT_TAG + varint(len(text)) + text


def with_sequence_id(raw_span: bytes, sequence_id: int) -> bytes:
    """``raw_span`` with its ``sequence_id`` set to ``sequence_id`` (appended, last value wins)."""
    return raw_span + _SEQUENCE_TAG + varint(sequence_id)


def repeated_message_field(field_number: int, payloads: list[bytes]) -> bytes:
    """Serialize ``repeated <message> field = field_number`` from already-serialized messages."""
    tag = varint(field_number << 3 | 2)
    return b"".join(tag + varint(len(p)) + p for p in payloads)
