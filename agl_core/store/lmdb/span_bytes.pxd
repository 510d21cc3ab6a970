# cython: language_level=3
"""The store's keys and a span's appended sequence id, each built in one allocation: the pieces the
compiled span loop (``span_loop``) writes, each the twin of the Python that packs the same bytes
(named in its docstring; ``tests/unit/test_span_loop_twin.py`` compares what both store). Inline in
each module that cimports them."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy, memset

cdef enum:
    ENTRY_SIZE = 17  # span_id_log.ENTRY: a length byte and the id padded to 16 bytes


cdef inline void put_be64(unsigned char* p, uint64_t v) noexcept:
    cdef int k
    for k in range(8):
        p[k] = <unsigned char>(v >> (56 - 8 * k))


cdef inline void put_be32(unsigned char* p, uint32_t v) noexcept:
    p[0] = <unsigned char>(v >> 24)
    p[1] = <unsigned char>(v >> 16)
    p[2] = <unsigned char>(v >> 8)
    p[3] = <unsigned char>v


cdef inline bytes entry_bytes(bytes span_id):
    """``span_id_log.log_entry(span_id)``, for ids of at most 16 bytes."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(span_id)
    entry = PyBytes_FromStringAndSize(NULL, ENTRY_SIZE)
    cdef unsigned char* out = <unsigned char*>PyBytes_AS_STRING(entry)
    memset(out, 0, ENTRY_SIZE)
    out[0] = <unsigned char>n
    memcpy(out + 1, PyBytes_AS_STRING(span_id), n)
    return entry


cdef inline bytes span_key(uint64_t num, uint32_t seq, uint64_t sequence_id, bytes span_id):
    """``SPAN_PREFIX.pack(num, seq, sequence_id) + span_id``."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(span_id)
    key = PyBytes_FromStringAndSize(NULL, 20 + n)
    cdef unsigned char* out = <unsigned char*>PyBytes_AS_STRING(key)
    put_be64(out, num)
    put_be32(out + 8, seq)
    put_be64(out + 12, sequence_id)
    memcpy(out + 20, PyBytes_AS_STRING(span_id), n)
    return key


cdef inline bytes with_sequence_id(bytes raw, uint64_t sequence_id):
    """``wire.with_sequence_id``: field 62 (tag 0xF0 0x03) and the id's varint appended."""
    cdef unsigned char tail[12]
    cdef Py_ssize_t t = 2
    tail[0] = 0xF0
    tail[1] = 0x03
    while sequence_id > 0x7F:
        tail[t] = <unsigned char>((sequence_id & 0x7F) | 0x80)
        sequence_id >>= 7
        t += 1
    tail[t] = <unsigned char>sequence_id
    t += 1
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    out = PyBytes_FromStringAndSize(NULL, n + t)
    cdef char* p = PyBytes_AS_STRING(out)
    memcpy(p, PyBytes_AS_STRING(raw), n)
    memcpy(p + n, tail, t)
    return out


cdef inline bytes chunk_key(uint64_t num, uint32_t seq, uint32_t chunk_no):
    """``span_id_log.CHUNK_KEY.pack(num, seq, chunk_no)``."""
    key = PyBytes_FromStringAndSize(NULL, 16)
    cdef unsigned char* out = <unsigned char*>PyBytes_AS_STRING(key)
    put_be64(out, num)
    put_be32(out + 8, seq)
    put_be32(out + 12, chunk_no)
    return key


cdef inline bytes attempt_key(uint64_t num, uint32_t seq):
    """``schema.attempt_key(num, seq)``."""
    key = PyBytes_FromStringAndSize(NULL, 12)
    cdef unsigned char* out = <unsigned char*>PyBytes_AS_STRING(key)
    put_be64(out, num)
    put_be32(out + 8, seq)
    return key


cdef inline bytes u64(uint64_t value):
    key = PyBytes_FromStringAndSize(NULL, 8)
    put_be64(<unsigned char*>PyBytes_AS_STRING(key), value)
    return key
