# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Whether a serialized message parses, decided on its wire bytes in C: the fast path of the edge
check that every span agl-server acknowledges can be read back (``agl_server.span_checks``).
(Whether a batch's spans have ids the store can place is ``span_id_check``'s.)

Parsing a 10-span batch with the protobuf runtime to find out took 25 us on the event loop, most
of it building the hundreds of ``AnyValue`` messages of the token-id arrays, only to drop them.
:class:`WireCheck` walks the same bytes against tables built from the message's descriptor and
checks what a parse checks: tags, varints and lengths well formed and within the message, every
``string`` field valid UTF-8 (non-ASCII strings decoded by CPython's strict UTF-8 codec, which
refuses what protobuf refuses: overlong forms, surrogates, code points past U+10FFFF), fixed-size
fields whole, packed repeated fields whole, and sub-messages walked the same way.

It is conservative: True means the protobuf runtime parses the bytes; False means only "not
sure", and the caller parses them to decide. So it answers False, rather than following protobuf
into its corners, for groups, a known field sent with another wire type, a varint of ten bytes
whose last byte has more than its lowest bit, nesting deeper than :data:`MAX_DEPTH` (protobuf's
own limit is 100) and any message type it has no table for. ``tests/unit/test_wire_check.py``
holds it to that against the protobuf runtime on generated and damaged messages.

Built by ``pip install`` (setup.py, Cython) with the span loop; where it is not built, the edge
check parses every batch.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint64_t
from libc.string cimport memset

from agl_core.store.wire_read cimport ascii, read_varint, skip, utf8

from google.protobuf.descriptor import FieldDescriptor

# Well under protobuf's 100, so that no question of how each counts its levels arises: deeper
# messages are left to the runtime's parse.
cdef enum:
    MAX_DEPTH_C = 64
MAX_DEPTH = MAX_DEPTH_C
cdef uint64_t MAX_TAG = 0xFFFFFFFF  # a tag is a 32-bit varint

# What a field number of a message is, as far as its wire bytes go.
cdef enum Kind:
    UNKNOWN = 0   # not a field of the message: skipped as the runtime skips it (kept as unknown)
    VARINT = 1
    FIXED64 = 2
    FIXED32 = 3
    STRING = 4    # valid UTF-8
    BYTES = 5
    MESSAGE = 6
    REFUSE = 7    # a group: not followed here

cdef struct Field:
    unsigned char kind
    unsigned char packable  # a repeated scalar: length-delimited means packed
    int child               # MESSAGE: the index of its type's table

cdef struct Table:
    int max_number
    Field* fields           # max_number + 1 entries; numbers past max_number are UNKNOWN

_SCALARS = {
    FieldDescriptor.TYPE_DOUBLE: FIXED64,
    FieldDescriptor.TYPE_FIXED64: FIXED64,
    FieldDescriptor.TYPE_SFIXED64: FIXED64,
    FieldDescriptor.TYPE_FLOAT: FIXED32,
    FieldDescriptor.TYPE_FIXED32: FIXED32,
    FieldDescriptor.TYPE_SFIXED32: FIXED32,
    FieldDescriptor.TYPE_INT64: VARINT,
    FieldDescriptor.TYPE_UINT64: VARINT,
    FieldDescriptor.TYPE_INT32: VARINT,
    FieldDescriptor.TYPE_UINT32: VARINT,
    FieldDescriptor.TYPE_BOOL: VARINT,
    FieldDescriptor.TYPE_ENUM: VARINT,
    FieldDescriptor.TYPE_SINT32: VARINT,
    FieldDescriptor.TYPE_SINT64: VARINT,
    FieldDescriptor.TYPE_STRING: STRING,
    FieldDescriptor.TYPE_BYTES: BYTES,
    FieldDescriptor.TYPE_MESSAGE: MESSAGE,
    FieldDescriptor.TYPE_GROUP: REFUSE,
}




cdef class WireCheck:
    """``check(data)``: True when ``data`` parses as the message type given (and every message type
    it holds), False when not or not sure (see the module's docstring)."""

    cdef Table* tables
    cdef int count
    cdef readonly object full_name

    def __cinit__(self, descriptor):
        self.tables = NULL
        self.count = 0

    def __init__(self, descriptor):
        """``descriptor``: a message type's ``DESCRIPTOR``; the tables cover every message type
        reachable from it."""
        self.full_name = descriptor.full_name
        order: list = []
        index: dict = {}
        pending = [descriptor]
        while pending:  # every reachable message type, numbered in the order first seen
            message = pending.pop()
            if message.full_name in index:
                continue
            index[message.full_name] = len(order)
            order.append(message)
            for field in message.fields:
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    pending.append(field.message_type)
        self.tables = <Table*>PyMem_Malloc(len(order) * sizeof(Table))
        if self.tables == NULL:
            raise MemoryError()
        memset(self.tables, 0, len(order) * sizeof(Table))
        self.count = len(order)
        cdef Table* table
        cdef Field* slot
        for i, message in enumerate(order):
            table = &self.tables[i]
            table.max_number = max((field.number for field in message.fields), default=0)
            table.fields = <Field*>PyMem_Malloc((table.max_number + 1) * sizeof(Field))
            if table.fields == NULL:
                raise MemoryError()
            memset(table.fields, 0, (table.max_number + 1) * sizeof(Field))
            for field in message.fields:
                slot = &table.fields[field.number]
                slot.kind = _SCALARS.get(field.type, REFUSE)
                slot.packable = _repeated(field) and slot.kind in (VARINT, FIXED64, FIXED32)
                slot.child = index[field.message_type.full_name] if slot.kind == MESSAGE else -1

    def __dealloc__(self):
        if self.tables != NULL:
            for i in range(self.count):
                PyMem_Free(self.tables[i].fields)
            PyMem_Free(self.tables)

    def check(self, bytes data) -> bool:
        return self._walk(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), 0, 1) == 1

    def check_each(self, raws) -> bool:
        """Whether every one of ``raws`` (bytes) parses, each as this message type one level down
        (as the spans of a request or a response are)."""
        cdef bytes raw
        for raw in raws:
            if not self._walk(<const unsigned char*>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), 0, 2):
                return False
        return True

    cdef int _walk(self, const unsigned char* p, Py_ssize_t n, int message, int depth) except -1:
        if depth > MAX_DEPTH_C:
            return False
        cdef Table* table = &self.tables[message]
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t end
        cdef uint64_t tag, length
        cdef uint64_t number
        cdef int wire
        cdef Field field
        while pos < n:
            if not read_varint(p, n, &pos, &tag, 5) or tag > MAX_TAG:
                return False
            number = tag >> 3
            wire = tag & 7
            if number == 0:
                return False
            if number <= <uint64_t>table.max_number:
                field = table.fields[number]
            else:
                field.kind = UNKNOWN
                field.packable = 0
            if wire == 0 or wire == 1 or wire == 5:
                if field.kind != UNKNOWN and field.kind != (VARINT if wire == 0 else FIXED64 if wire == 1 else FIXED32):
                    return False
                if not skip(p, n, &pos, wire):
                    return False
            elif wire == 2:
                if not read_varint(p, n, &pos, &length, 5) or length > <uint64_t>(n - pos):
                    return False
                end = pos + <Py_ssize_t>length
                if field.kind == STRING:
                    if not utf8(p + pos, end - pos):
                        return False
                elif field.kind == MESSAGE:
                    if not self._walk(p + pos, end - pos, field.child, depth + 1):
                        return False
                elif field.packable:
                    if not _packed(p + pos, end - pos, field.kind):
                        return False
                elif field.kind != UNKNOWN and field.kind != BYTES:
                    return False
                pos = end
            else:  # groups (3, 4) and the wire types that do not exist (6, 7)
                return False
        return True


cdef bint _packed(const unsigned char* p, Py_ssize_t n, unsigned char kind) noexcept nogil:
    cdef Py_ssize_t pos = 0
    cdef uint64_t value
    if kind == FIXED64:
        return n % 8 == 0
    if kind == FIXED32:
        return n % 4 == 0
    while pos < n:
        if not read_varint(p, n, &pos, &value, 10):
            return False
    return True


def _repeated(field) -> bool:
    # protobuf 5.x+ has is_repeated; label is the older spelling of the same.
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return field.label == FieldDescriptor.LABEL_REPEATED
