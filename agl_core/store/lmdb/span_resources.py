"""Each span's OTLP resource is stored once, content-addressed, instead of once per span.

OTLP sends one resource (service name, host, process, often kilobytes) for many spans, and
agl's span model carries it in every span (field 50). Stored as received, a 162 KB Export grew
the data file by 203 MB. So before a span is written, its resource bytes are cut out and kept in
the ``span_resources`` sub-database under their hash; the stored span keeps the hash instead:

    stored value = MARKER (0x00) + 16-byte hash + the span's bytes without field 50

A serialized protobuf message never starts with a 0x00 byte (field number 0 does not exist), so
spans stored before this change (and spans without a resource, which are stored as received)
are told apart by their first byte. Reading puts the resource back as one field 50 at the end:
the span parses to the same message it was sent as. Several occurrences of field 50 in one
span are joined in order, which is what protobuf's merge of a repeated message field does.

Parsing a span only far enough to find field 50 (a view with that one field, built from
descriptors as in ``wire.py``) runs in the protobuf runtime's C code; spans without the
resource tag skip it entirely.
"""

from __future__ import annotations

import hashlib

import lmdb
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from agl_core.store.wire import varint

RESOURCE_FIELD = 50
MARKER = b"\x00"
HASH_BYTES = 16
# The tag of field 50, length-delimited: (50 << 3) | 2 as a varint.
_TAG = varint(RESOURCE_FIELD << 3 | 2)


def _build_view() -> type:
    file = descriptor_pb2.FileDescriptorProto(
        name="agl/v1/internal_span_resource.proto", package="agl.v1.store", syntax="proto3"
    )
    view = file.message_type.add(name="SpanResourceView")
    view.field.add(
        name="resource",
        number=RESOURCE_FIELD,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("agl.v1.store.SpanResourceView"))


_View = _build_view()


def split(raw: bytes) -> tuple[bytes, bytes] | None:
    """(the span without its resource, the resource's bytes), or None if it has no resource."""
    if _TAG not in raw:  # a fast pre-check; a match may be inside another field, so parse to be sure
        return None
    view = _View.FromString(raw)
    if not view.resource:
        return None
    resource = b"".join(view.resource)
    view.ClearField("resource")
    # Everything else is kept as unknown fields, which are written back byte for byte.
    return view.SerializeToString(), resource


class ResourceWriter:
    """Stores spans' resources once, within one write transaction."""

    def __init__(self, txn: lmdb.Transaction, db: lmdb._Database) -> None:
        self._txn = txn
        self._db = db
        self._digests: dict[bytes, bytes] = {}  # the spans of one batch mostly share one resource

    def store(self, raw: bytes) -> bytes:
        """The value to store for span ``raw``; its resource goes to the resources sub-database."""
        parts = split(raw)
        if parts is None:
            return raw
        stripped, resource = parts
        if not resource:
            return raw  # an empty resource: nothing to share
        digest = self._digests.get(resource)
        if digest is None:
            digest = hashlib.blake2b(resource, digest_size=HASH_BYTES).digest()
            self._txn.put(digest, resource, db=self._db, overwrite=False)
            self._digests[resource] = digest
        return MARKER + digest + stripped


class ResourceReader:
    """Turns stored values back into the spans as received, within one read transaction."""

    def __init__(self, txn: lmdb.Transaction, db: lmdb._Database) -> None:
        self._txn = txn
        self._db = db
        self._cache: dict[bytes, bytes] = {}  # encoded field 50 by hash

    def span_bytes(self, value: bytes) -> bytes:
        if not value.startswith(MARKER):
            return value
        digest = value[1 : 1 + HASH_BYTES]
        field = self._cache.get(digest)
        if field is None:
            resource = self._txn.get(digest, db=self._db)
            if resource is None:
                raise LookupError(f"span resource {digest.hex()} is missing from the store")
            field = _TAG + varint(len(resource)) + bytes(resource)
            self._cache[digest] = field
        return value[1 + HASH_BYTES :] + field
