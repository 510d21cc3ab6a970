# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Whether a batch's spans all have ids the store can place, decided on the request's wire bytes in
C, and what the store reads of each span to place it (:class:`SpanIdCheck`, for
``agl_core.store.validation``). Built by ``pip install`` (setup.py, Cython) with the edge check's
walk (``wire_check``), whose wire readers it shares (``wire_read.pxd``); where it is not built,
the headers are parsed and each span's ids checked in Python. ``tests/unit/test_span_id_check.py``
holds it to the protobuf runtime's parse of the headers.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcmp, memset

from agl_core.store.wire_read cimport read_varint, skip, utf8

cdef uint64_t MAX_TAG = 0xFFFFFFFF  # a tag is a 32-bit varint


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
