# cython: language_level=3
"""Reading protobuf's wire format in C: the pieces the compiled walks share (``wire_check``,
``span_id_check``, ``lmdb/attempt_beat``), inline in each module that cimports them."""

from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport uint64_t


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


cdef inline int utf8(const unsigned char* p, Py_ssize_t n) except -1:
    if ascii(p, n):
        return True
    try:
        PyUnicode_DecodeUTF8(<const char*>p, n, "strict")
    except UnicodeDecodeError:
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
