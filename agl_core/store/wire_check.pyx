# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Whether a serialized message parses, decided on its wire bytes in C: the fast path of the edge
check that every span agl-server acknowledges can be read back (``agl_server.span_checks``);
and (:class:`SpanIdCheck`) whether a batch's spans all have ids the store can place, and what it
reads of each to place it.

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

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcmp, memset

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


cdef inline bint read_varint(const unsigned char* p, Py_ssize_t n, Py_ssize_t* pos, uint64_t* out, int most) noexcept nogil:
    """A varint of at most ``most`` bytes at ``p[pos]``; advances ``pos``. False when cut short,
    longer, or (ten bytes) holding more than 64 bits."""
    cdef uint64_t value = 0
    cdef int shift = 0
    cdef int i
    cdef unsigned char byte
    for i in range(most):
        if pos[0] >= n:
            return False
        byte = p[pos[0]]
        pos[0] += 1
        if i == 9 and byte > 1:
            return False
        value |= (<uint64_t>(byte & 0x7F)) << shift
        if byte < 0x80:
            out[0] = value
            return True
        shift += 7
    return False


cdef inline bint ascii(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef unsigned char seen = 0
    for i in range(n):
        seen |= p[i]
    return seen < 0x80


cdef int utf8(const unsigned char* p, Py_ssize_t n) except -1:
    if ascii(p, n):
        return True
    try:
        PyUnicode_DecodeUTF8(<const char*>p, n, "strict")
    except UnicodeDecodeError:
        return False
    return True


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


cdef inline bint skip(const unsigned char* p, Py_ssize_t n, Py_ssize_t* pos, int wire) noexcept nogil:
    """Past the value of a field of wire type ``wire`` at ``p[pos]``; False when it is cut short or
    of a wire type not followed here (groups, and the types that do not exist)."""
    cdef uint64_t value
    if wire == 0:
        return read_varint(p, n, pos, &value, 10)
    if wire == 1 or wire == 5:
        if n - pos[0] < (8 if wire == 1 else 4):
            return False
        pos[0] += 8 if wire == 1 else 4
        return True
    if wire == 2:
        if not read_varint(p, n, pos, &value, 5) or value > <uint64_t>(n - pos[0]):
            return False
        pos[0] += <Py_ssize_t>value
        return True
    return False


cdef struct SpanIds:
    # Where the last value of each field the store places a span by lies in the span's bytes (the
    # value protobuf keeps), and the sequence id.
    Py_ssize_t trace_len
    Py_ssize_t span_at, span_len
    Py_ssize_t rollout_at, rollout_len
    Py_ssize_t attempt_at, attempt_len
    uint64_t sequence
    bint resource          # the OTLP resource field is there (as bytes: a header's ``resource``)


cdef class SpanPlace:
    """What the store's span loop reads of a span to place it, read from the span's bytes by
    :meth:`SpanIdCheck.headers`: the fields of ``wire.SpanHeader`` it reads, with the same values
    (``resource`` only says whether the span has one)."""

    cdef readonly bytes span_id
    cdef readonly str rollout_id
    cdef readonly str attempt_id
    cdef readonly int64_t sequence_id
    cdef readonly bint resource

    def __repr__(self):
        return (
            f"SpanPlace(rollout_id={self.rollout_id!r}, attempt_id={self.attempt_id!r}, "
            f"span_id={self.span_id!r}, sequence_id={self.sequence_id}, resource={self.resource})"
        )


cdef class SpanIdCheck:
    """``check(whole)``: True when every span of the serialized IngestSpansRequest ``whole`` has ids
    the store can place, as ``validation.span_ids_well_formed`` decides for its ``SpanHeader``:
    rollout and attempt ids of 1 to ``max_id_bytes`` bytes, a span id of 1 to ``max_span_id_bytes``,
    a trace id of at most ``max_trace_id_bytes``, a sequence id from 0 to ``max_sequence_id``, the
    last value of each field counting (as protobuf parses it). False when not or not sure (a field
    of those with another wire type, a group): the caller checks each span's header in Python.

    For bytes that parse as ``SpanHeader``s (their strings valid UTF-8): it reads lengths and the
    sequence id only. Ten spans take 1 us here against 12 us of Python over their headers.

    ``headers(whole)``: the same walk, and, where it says yes, what the store reads of each span to
    place it (a :class:`SpanPlace` per span, in order); None when not or not sure. It needs no
    parse beforehand: it also says None wherever parsing the bytes as ``SpanHeader``s would fail
    (a field number 0, a tag past 32 bits, an id that is not valid UTF-8 in any of its values).
    It replaces that parse on the writer's hot path: the protobuf runtime's parse of a 10-span
    batch's headers took about 8 us, and each read of a parsed header's field makes a new object."""

    cdef uint64_t spans_field, trace_id, span_id, rollout_id, attempt_id, sequence_id, resource
    cdef Py_ssize_t max_id, max_span_id, max_trace_id
    cdef uint64_t max_sequence_id

    def __init__(self, request_descriptor, span_descriptor, *, max_id_bytes, max_span_id_bytes,
                 max_trace_id_bytes, max_sequence_id):
        self.spans_field = request_descriptor.fields_by_name["spans"].number
        fields = span_descriptor.fields_by_name
        self.trace_id = fields["trace_id"].number
        self.span_id = fields["span_id"].number
        self.rollout_id = fields["rollout_id"].number
        self.attempt_id = fields["attempt_id"].number
        self.sequence_id = fields["sequence_id"].number
        self.resource = fields["resource"].number
        self.max_id, self.max_span_id, self.max_trace_id = max_id_bytes, max_span_id_bytes, max_trace_id_bytes
        self.max_sequence_id = max_sequence_id

    def check(self, bytes whole) -> bool:
        return self._walk(whole, None, False) == 1

    def headers(self, bytes whole):
        cdef list out = []
        if self._walk(whole, out, True) != 1:
            return None
        return out

    cdef int _walk(self, bytes whole, list out, bint strict) except -1:
        """1 when every span's ids can be placed (and, with ``out``, each span's SpanPlace appended
        to it); 0 when not or not sure. ``strict``: also 0 wherever a parse would fail."""
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(whole)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(whole)
        cdef Py_ssize_t pos = 0
        cdef uint64_t tag, length
        cdef int wire
        cdef SpanIds ids
        # The spans of a batch mostly share their rollout and attempt ids: each id is decoded once.
        cdef object rollout = None, attempt = None
        cdef const unsigned char* rollout_p = NULL
        cdef const unsigned char* attempt_p = NULL
        cdef Py_ssize_t rollout_n = -1, attempt_n = -1
        cdef SpanPlace place
        while pos < n:
            if not read_varint(p, n, &pos, &tag, 5):
                return 0
            if strict and (tag >> 3 == 0 or tag > MAX_TAG):
                return 0
            wire = tag & 7
            if tag >> 3 != self.spans_field:
                if not skip(p, n, &pos, wire):
                    return 0
                continue
            if wire != 2 or not read_varint(p, n, &pos, &length, 5) or length > <uint64_t>(n - pos):
                return 0
            if self._span(p + pos, <Py_ssize_t>length, &ids, strict) != 1:
                return 0
            if out is not None:
                place = SpanPlace.__new__(SpanPlace)
                place.span_id = PyBytes_FromStringAndSize(<const char*>p + pos + ids.span_at, ids.span_len)
                if not _same(rollout_p, rollout_n, p + pos + ids.rollout_at, ids.rollout_len):
                    rollout_p, rollout_n = p + pos + ids.rollout_at, ids.rollout_len
                    rollout = PyUnicode_DecodeUTF8(<const char*>rollout_p, rollout_n, "strict")
                if not _same(attempt_p, attempt_n, p + pos + ids.attempt_at, ids.attempt_len):
                    attempt_p, attempt_n = p + pos + ids.attempt_at, ids.attempt_len
                    attempt = PyUnicode_DecodeUTF8(<const char*>attempt_p, attempt_n, "strict")
                place.rollout_id = rollout
                place.attempt_id = attempt
                place.sequence_id = <int64_t>ids.sequence  # at most max_sequence_id, an int64's largest
                place.resource = ids.resource
                out.append(place)
            pos += <Py_ssize_t>length
        return 1

    cdef int _span(self, const unsigned char* p, Py_ssize_t n, SpanIds* ids, bint strict) except -1:
        cdef Py_ssize_t pos = 0
        cdef uint64_t tag, number, value
        cdef int wire
        memset(ids, 0, sizeof(SpanIds))
        while pos < n:
            if not read_varint(p, n, &pos, &tag, 5):
                return 0
            number, wire = tag >> 3, tag & 7
            if strict and (number == 0 or tag > MAX_TAG):
                return 0
            if number == self.sequence_id:
                if wire != 0 or not read_varint(p, n, &pos, &ids.sequence, 10):
                    return 0
            elif number == self.trace_id or number == self.span_id or number == self.rollout_id or number == self.attempt_id:
                if wire != 2 or not read_varint(p, n, &pos, &value, 5) or value > <uint64_t>(n - pos):
                    return 0
                if number == self.trace_id:
                    ids.trace_len = <Py_ssize_t>value
                elif number == self.span_id:
                    ids.span_at, ids.span_len = pos, <Py_ssize_t>value
                else:
                    # A parse checks every value of a string field, not only the one it keeps.
                    if strict and not utf8(p + pos, <Py_ssize_t>value):
                        return 0
                    if number == self.rollout_id:
                        ids.rollout_at, ids.rollout_len = pos, <Py_ssize_t>value
                    else:
                        ids.attempt_at, ids.attempt_len = pos, <Py_ssize_t>value
                pos += <Py_ssize_t>value
            elif number == self.resource:
                # A header keeps the resource as bytes; sent as another wire type, it would keep
                # none, which is for the parse to say.
                if strict and wire != 2:
                    return 0
                ids.resource = True
                if not skip(p, n, &pos, wire):
                    return 0
            elif not skip(p, n, &pos, wire):
                return 0
        return (
            0 < ids.rollout_len <= self.max_id and 0 < ids.attempt_len <= self.max_id
            and 0 < ids.span_len <= self.max_span_id and ids.trace_len <= self.max_trace_id
            and ids.sequence <= self.max_sequence_id
        )


cdef inline bint _same(const unsigned char* a, Py_ssize_t a_n, const unsigned char* b, Py_ssize_t b_n) noexcept nogil:
    return a_n == b_n and memcmp(a, b, <size_t>a_n) == 0


def _repeated(field) -> bool:
    # protobuf 5.x+ has is_repeated; label is the older spelling of the same.
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return field.label == FieldDescriptor.LABEL_REPEATED
