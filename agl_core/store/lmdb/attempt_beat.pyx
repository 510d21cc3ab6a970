# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Where a batch's spans go and the heartbeat they give their attempt, on the stored bytes: the
compiled span loop's way for the common case, with no protobuf object made.

For each attempt a batch names, ``span_write.ingest_target`` parses the rollout's record and the
attempt's, and at the end of the batch ``Tx.heartbeat`` sets the attempt's ``last_heartbeat_time``
and serializes it again: about 14 us per batch on the store writer, a third of its operation on a
10-span batch. Mostly nothing but the time changes: the attempt is RUNNING already, or no longer
the latest one (a stale attempt's span changes no status). :func:`beat_target` resolves such an
attempt from the ``rollouts``, ``attempt_ids`` and ``attempts`` records' bytes and returns its
record with the new heartbeat already in it, which ``span_write.finish`` puts back. Everything else
is left to the Python path by returning None:

- an attempt named "latest", an unknown rollout or attempt, an attempt of another rollout (their
  answers and messages are the Python path's);
- the latest attempt while PREPARING or UNRESPONSIVE, whose first span moves it and its rollout to
  RUNNING;
- an attempt record these walks do not follow (a malformed varint or length, a group).

The record written parses to what the Python path writes (the same fields and unknown fields;
``last_heartbeat_time`` replaced wherever it was, or put before any higher field number, so that a
record the runtime serialized stays in its field order). ``tests/unit/test_attempt_beat.py`` holds
both to that, on generated attempts and through stores running each span loop.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memcpy

from agl_core.store.wire_read cimport read_varint, skip

# agl.v1.Attempt's field numbers (types.proto) and the statuses whose first span starts the attempt.
cdef enum:
    STATUS_FIELD = 6
    HEARTBEAT_FIELD = 8
    PREPARING = 1
    UNRESPONSIVE = 5
    ROLLOUT_HEADER_BYTES = 20   # schema.ROLLOUT_HEADER: num (8), queue sequence (8), attempts (4)
    ATTEMPT_KEY_BYTES = 12      # schema.ATTEMPT_KEY: num (8), attempt sequence (4)


cdef inline uint64_t _be(const unsigned char* p, int n) noexcept:
    cdef uint64_t v = 0
    cdef int k
    for k in range(n):
        v = (v << 8) | p[k]
    return v


cdef Py_ssize_t _put_varint(unsigned char* out, uint64_t value) noexcept:
    cdef Py_ssize_t k = 0
    while value > 0x7F:
        out[k] = <unsigned char>((value & 0x7F) | 0x80)
        value >>= 7
        k += 1
    out[k] = <unsigned char>value
    return k + 1


def with_heartbeat(bytes attempt, int64_t now_ns):
    """The serialized Attempt ``attempt`` with ``last_heartbeat_time`` set to ``now_ns`` (as
    ``Timestamp.FromNanoseconds`` sets it), and its status; None where the walk is unsure."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(attempt)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(attempt)
    cdef Py_ssize_t pos = 0, start, at = -1, kept = 0
    cdef uint64_t tag, number, status = 0
    cdef int wire
    # The new field: tag, length, then seconds (1) and nanos (2), each left out when zero.
    cdef unsigned char field[32]
    cdef unsigned char body[24]
    cdef Py_ssize_t b = 0, f
    if now_ns < 0:
        return None
    cdef uint64_t seconds = <uint64_t>(now_ns // 1000000000), nanos = <uint64_t>(now_ns % 1000000000)
    if seconds:
        body[b] = 0x08
        b += 1 + _put_varint(body + b + 1, seconds)
    if nanos:
        body[b] = 0x10
        b += 1 + _put_varint(body + b + 1, nanos)
    field[0] = HEARTBEAT_FIELD << 3 | 2
    field[1] = <unsigned char>b  # under 128 bytes: one length byte
    memcpy(field + 2, body, b)
    f = 2 + b
    # First pass: the status (its last value), where the new field goes, the bytes kept.
    while pos < n:
        start = pos
        if not read_varint(p, n, &pos, &tag, 5) or tag >> 3 == 0 or tag > 0xFFFFFFFF:
            return None
        number, wire = tag >> 3, tag & 7
        if number == STATUS_FIELD and wire == 0:
            if not read_varint(p, n, &pos, &status, 10):
                return None
        elif not skip(p, n, &pos, wire):
            return None
        if number == HEARTBEAT_FIELD:
            if wire != 2:
                return None  # the runtime would keep it as an unknown field: the Python path's case
            if at < 0:
                at = kept
        else:
            if at < 0 and number > HEARTBEAT_FIELD:
                at = kept
            kept += pos - start
    if at < 0:
        at = kept
    out = PyBytes_FromStringAndSize(NULL, kept + f)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    cdef Py_ssize_t w = 0
    # Second pass: the kept fields in their order, the new one at ``at``.
    pos = 0
    while pos < n:
        if w == at:
            memcpy(o + w, field, f)
            w += f
            at = -2  # written
        start = pos
        read_varint(p, n, &pos, &tag, 5)
        skip(p, n, &pos, tag & 7)
        if tag >> 3 != HEARTBEAT_FIELD:
            memcpy(o + w, p + start, pos - start)
            w += pos - start
    if at != -2:
        memcpy(o + w, field, f)
    return out, status


def beat_target(tx, str rollout_id, str attempt_id):
    """``(None, the attempt's record with its new heartbeat, rollout number, attempt sequence)``
    for an attempt named by its id whose spans change no status; None for the Python path (see the
    module's docstring). The record is what ``span_write.finish`` puts back in ``attempts``."""
    if attempt_id == "latest":
        return None
    txn, dbs = tx.txn, tx.dbs
    rollout = txn.get(rollout_id.encode(), db=dbs.rollouts)
    if rollout is None or PyBytes_GET_SIZE(rollout) < ROLLOUT_HEADER_BYTES:
        return None
    cdef const unsigned char* r = <const unsigned char*>PyBytes_AS_STRING(rollout)
    cdef uint64_t num = _be(r, 8)
    cdef uint32_t attempts = <uint32_t>_be(r + 16, 4)
    key = txn.get(attempt_id.encode(), db=dbs.attempt_ids)
    if key is None or PyBytes_GET_SIZE(key) != ATTEMPT_KEY_BYTES:
        return None
    cdef const unsigned char* k = <const unsigned char*>PyBytes_AS_STRING(key)
    if _be(k, 8) != num:
        return None
    cdef uint32_t seq = <uint32_t>_be(k + 8, 4)
    record = txn.get(key, db=dbs.attempts)
    if record is None:
        return None
    beaten = with_heartbeat(record, tx.now_ns)
    if beaten is None:
        return None
    attempt, status = beaten
    if seq == attempts and (status == PREPARING or status == UNRESPONSIVE):
        return None
    return (None, attempt, num, seq)
