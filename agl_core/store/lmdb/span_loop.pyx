# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The store writer's span loop, compiled: :func:`span_write.ingest` with the per-span work in C.

Every span of every batch passes through this loop on the one writer thread, and every batch's
acknowledgement waits for it (docs/span-acks.md, "The compiled span loop": the writer's CPU per
10-span batch fell by about a third). ``span_write.ingest`` is the reference: this does the same,
in the same order, with the same results and the same bytes stored, and
``tests/unit/test_span_loop_twin.py`` holds the two to that on generated batches. What it does in C
instead of Python objects per span:

- the span-id filter's entry, probes and bits (``span_ids._Filter.add``, also on a growing filter's
  successor), read and set through the filter's bytearray;
- the ``spans`` key (``SPAN_PREFIX`` and the span id) and the sequence id appended to the span's
  bytes (``wire.with_sequence_id``), each built in one allocation (``span_bytes.pxd``, with the
  other keys it writes);
- the per-attempt lookups (target, filter, pending set), resolved once per attempt per call;
- after the loop, the chunks (``span_chunks.encode``) and their references in ``spans``
  (``ChunkWriter.flush``), each built in one allocation;
- a filter's bits set from log entries, when the index rebuilds or grows one (:func:`add_all`,
  which the store gives the index with this loop);
- after the chunks, ``span_write.finish``: the sequence counters' and the attempts' puts, and the
  span-id logs' appends (:func:`append`, which the store gives the index with this loop).

What stays Python, called from here: the first lookup of each attempt (``span_write.ingest_target``,
``SpanIdIndex`` reading a log to rebuild a filter), the exact check of a "maybe present" id, the
resource code, where chunks are cut (``span_chunks.partition``), the span-id index's flush (which
logs to append to, a filter's growth), a heartbeat that changes an attempt's status
(``Tx.heartbeat``), and LMDB's puts. It reads the private state of ``SpanIdIndex`` and
``_Filter`` (their filters, pending sets and bits): a change there is a change here, and the twin
test fails until both agree.

Built by ``pip install`` (setup.py, Cython); where it is not built, ``span_path`` uses the Python.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport PyObject_Hash
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memcpy

from agl_core.store.lmdb.span_bytes cimport (
    ENTRY_SIZE,
    attempt_key,
    chunk_key,
    entry_bytes,
    put_be32,
    put_be64,
    span_key,
    u64,
    with_sequence_id,
)

from agl_core.store.lmdb import span_write
from agl_core.store.lmdb.attempt_beat import beat_target
from agl_core.store.lmdb.schema import U64, read_counter
from agl_core.store.lmdb.span_chunks import REF_MARKER, WHOLE_BYTES, inline_bytes, partition
from agl_core.store.lmdb.span_id_log import CHUNK_ENTRIES, ENTRY, last_chunk, log_entry
from agl_core.store.lmdb.span_resources import ResourceWriter
from agl_core.store.wire import attempt_id_field

cdef int64_t MAX_SEQUENCE_ID = span_write.MAX_SEQUENCE_ID
cdef Py_ssize_t WHOLE = WHOLE_BYTES
cdef object NOT_FOUND = span_write.NOT_FOUND
cdef object FAILED_PRECONDITION = span_write.FAILED_PRECONDITION
cdef object ingest_target = span_write.ingest_target
cdef object exhausted = span_write.exhausted
cdef object U64_pack = U64.pack

# An entry is a length byte and the id padded to 16 bytes; span ids are 1 to 16 bytes (validation).
# The key builders in span_bytes.pxd need the size as a C constant; it must be the log's.
assert ENTRY == ENTRY_SIZE
cdef Py_ssize_t CHUNK_BYTES = CHUNK_ENTRIES * ENTRY_SIZE


cdef class _Attempt:
    """What the loop needs of one attempt, looked up once per call."""
    cdef object target      # (record, attempt, num, seq), as span_write.ingest_target gives it
    cdef object num         # the rollout's number (a Python int: the key of ``counters``)
    cdef uint64_t num_c
    cdef uint32_t seq_c
    cdef object key         # (num, seq): the filter's key in SpanIdIndex
    cdef object flt         # the attempt's span_ids._Filter
    cdef set pending        # flt.pending
    cdef bytearray bits     # flt.bits (its buffer is read and set in place)
    cdef uint64_t mask
    cdef bytes renamed      # wire.attempt_id_field of the real id, for spans named "latest"; or None


cdef inline bint _probe(unsigned char* bits, uint64_t p) noexcept:
    """Set bit ``p``; whether it was set already."""
    cdef unsigned char m = <unsigned char>(1 << (p & 7))
    cdef uint64_t byte = p >> 3
    if bits[byte] & m:
        return True
    bits[byte] |= m
    return False


cdef inline bint _set_bits(bytearray bits, uint64_t mask, uint64_t h) noexcept:
    """``_Filter.add`` on a filter's ``bits`` for an entry of hash ``h``: the same probes, in its order;
    whether all three bits were set already."""
    cdef uint64_t h1 = h & 0xFFFFFFFF
    cdef uint64_t h2 = ((h >> 32) & 0xFFFFFFFF) | 1
    cdef unsigned char* b = <unsigned char*>PyByteArray_AS_STRING(bits)
    cdef bint present = True
    # Each probe must run (it sets the bit), so no short-circuit.
    if not _probe(b, h1 & mask):
        present = False
    if not _probe(b, (h1 + h2) & mask):
        present = False
    if not _probe(b, (h1 + 2 * h2) & mask):
        present = False
    return present


def add_all(flt, bytes entries):
    """``span_ids._add_all``, compiled: the bits of every log entry in ``entries`` (whole entries,
    joined) set in the filter ``flt``, exactly as ``_Filter.add`` sets them one by one (the same
    salted hash of each entry's bytes, the same probes). The store uses it with this loop
    (``span_path.filter_fill``): a filter made or grown from an attempt's log then costs the writer
    about 0.07 us per id, against 1.1 in Python and 0.17 with numpy, which it no longer imports."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(entries)
    if n % ENTRY_SIZE:
        raise ValueError(f"a span-id log holds whole {ENTRY_SIZE}-byte entries, not {n} bytes")
    cdef bytearray bits = flt.bits
    cdef uint64_t mask = flt.mask
    cdef const char* p = PyBytes_AS_STRING(entries)
    cdef Py_ssize_t at
    for at in range(0, n, ENTRY_SIZE):
        entry = PyBytes_FromStringAndSize(p + at, ENTRY_SIZE)
        _set_bits(bits, mask, <uint64_t>PyObject_Hash(entry))


cdef _Attempt _attempt(object tx, object txn, object log_db, object span_ids, str rollout_id, str attempt_id, dict known):
    # Most attempts resolve from their records' bytes, heartbeat included (attempt_beat); the
    # others (new to RUNNING, "latest", not found) take span_write's way.
    target = beat_target(tx, rollout_id, attempt_id)
    if target is None:
        target = ingest_target(tx, rollout_id, attempt_id, known)
    cdef _Attempt a = _Attempt()
    a.target = target
    if isinstance(target, str):
        return a
    a.num = target[2]
    a.num_c = target[2]
    a.seq_c = target[3]
    a.key = (target[2], target[3])
    flt = span_ids._filters.get(a.key)
    if flt is None:
        flt = span_ids._rebuild(txn, log_db, target[2], target[3])
    a.flt = flt
    a.pending = flt.pending
    a.bits = flt.bits
    a.mask = flt.mask
    if target[0] is not None:  # beat_target's attempts are named by their own id
        real_id = target[1].attempt_id
        if attempt_id != real_id:
            a.renamed = attempt_id_field(real_id)
    return a


def ingest(tx, list spans, span_ids, chunk_numbers, Py_ssize_t page_size):
    """:func:`span_write.ingest`, compiled: the same arguments, results and stored bytes."""
    dbs = tx.dbs
    txn = tx.txn
    put = txn.put
    log_db = dbs.span_id_log
    spans_db = dbs.spans
    span_seqs = dbs.span_seqs
    dirty = span_ids._dirty
    cdef Py_ssize_t accepted = 0
    cdef list duplicates = []
    cdef list rejected = []
    cdef dict attempts = {}
    cdef dict counters = {}
    cdef dict touched = {}
    cdef dict resolved = {}  # span_write.ingest_target's: each attempt resolved once, however named
    resources = None
    cdef dict chunk_pending = {}  # num -> (spans keys, spans), as ChunkWriter keeps them
    cdef _Attempt a
    cdef int64_t sequence_id, last
    cdef bytes span_id, raw, entry
    cdef uint64_t h
    for item in spans:
        i, header, raw = item
        rollout_id = header.rollout_id
        attempt_id = header.attempt_id
        coords = (rollout_id, attempt_id)
        found = attempts.get(coords)
        if found is None:
            a = _attempt(tx, txn, log_db, span_ids, rollout_id, attempt_id, resolved)
            attempts[coords] = a
        else:
            a = <_Attempt>found
        if a.flt is None:
            rejected.append((i, NOT_FOUND, f"spans[{i}]: {a.target}"))
            continue
        span_id = header.span_id
        sequence_id = header.sequence_id
        counted = counters.get(a.num)
        if counted is None:
            last = read_counter(txn, span_seqs, U64_pack(a.num))
        else:
            last = counted
        if sequence_id == 0 and last >= MAX_SEQUENCE_ID:
            rejected.append((i, FAILED_PRECONDITION, f"spans[{i}]: {exhausted(rollout_id, last)}"))
            continue
        # span_ids.add_if_new, with the attempt's filter at hand.
        entry = entry_bytes(span_id) if PyBytes_GET_SIZE(span_id) <= 16 else log_entry(span_id)
        if entry in a.pending:
            duplicates.append(i)
            continue
        h = <uint64_t>PyObject_Hash(entry)  # the hash _Filter.add takes (bytes cache it)
        if _set_bits(a.bits, a.mask, h):
            span_ids.exact_checks += 1
            if span_ids._in_log(txn, log_db, a.num, a.key[1], entry):
                duplicates.append(i)
                continue
        a.flt.count += 1
        successor = a.flt.successor
        if successor is not None:  # a growing filter: its successor takes the id too
            _set_bits(successor.bits, successor.mask, h)
        if not a.pending:
            dirty[a.key] = a.flt
        a.pending.add(entry)
        if a.renamed is not None:
            raw = raw + a.renamed
        if sequence_id == 0:
            last += 1
            sequence_id = last
            raw = with_sequence_id(raw, <uint64_t>sequence_id)
        elif sequence_id > last:
            last = sequence_id
        counters[a.num] = last
        if header.resource:
            if resources is None:
                resources = ResourceWriter(txn, dbs.span_resources)
            raw = resources.store(raw)
        key = span_key(a.num_c, a.seq_c, <uint64_t>sequence_id, span_id)
        if PyBytes_GET_SIZE(raw) <= WHOLE:
            put(key, raw, True, True, False, spans_db)
        else:
            pending = chunk_pending.get(a.num)
            if pending is None:
                pending = chunk_pending[a.num] = ([], [])
            (<list>pending[0]).append(key)
            (<list>pending[1]).append(raw)
        touched[a.key] = a.target
        accepted += 1
    _flush_chunks(txn, dbs, chunk_numbers, chunk_pending, inline_bytes(page_size))
    _finish(tx, txn, dbs, span_ids, counters, touched, accepted)
    return accepted, duplicates, rejected


cdef _finish(tx, txn, dbs, span_ids, dict counters, dict touched, Py_ssize_t accepted):
    """``span_write.finish``: the span-id logs (through ``SpanIdIndex.flush``, which appends with
    :func:`append` where the store runs this loop), each rollout's last sequence id, the heartbeats."""
    span_ids.flush(txn, dbs.span_id_log)
    put = txn.put
    span_seqs = dbs.span_seqs
    for num, last in counters.items():
        put(u64(num), u64(last), True, True, False, span_seqs)
    attempts_db = dbs.attempts
    for target in touched.values():
        record, attempt, num, seq = target
        if record is None:  # from attempt_beat: the record's bytes, its heartbeat set
            put(attempt_key(num, seq), attempt, True, True, False, attempts_db)
        else:
            tx.heartbeat(record, attempt)
    tx.effects.spans += accepted


def append(txn, log_db, uint64_t num, uint32_t seq, entries, long long tail):
    """``span_id_log.append``, compiled: ``entries`` (17-byte log entries, in their order) appended to
    the attempt's log, the last chunk read by its key where ``tail`` names it; the same chunks
    and bytes. Returns the number of the last chunk."""
    found = txn.get(chunk_key(num, seq, <uint32_t>tail), None, log_db) if tail >= 0 else None
    cdef bytes chunk
    cdef uint32_t chunk_no
    if found is not None:
        chunk, chunk_no = <bytes?>found, <uint32_t>tail
    else:
        number, chunk = last_chunk(txn, log_db, num, seq)
        chunk_no = number
    cdef bytes joined = b"".join(entries)
    cdef Py_ssize_t total = PyBytes_GET_SIZE(joined), at = 0, have = PyBytes_GET_SIZE(chunk), n
    while at < total:
        if have >= CHUNK_BYTES:
            chunk_no += 1
            have = 0
            continue
        n = min(CHUNK_BYTES - have, total - at)
        grown = PyBytes_FromStringAndSize(NULL, have + n)
        memcpy(PyBytes_AS_STRING(grown), PyBytes_AS_STRING(chunk), have)
        memcpy(PyBytes_AS_STRING(grown) + have, PyBytes_AS_STRING(joined) + at, n)
        txn.put(chunk_key(num, seq, chunk_no), grown, True, True, False, log_db)
        chunk = grown
        have += n
        at += n
    return chunk_no


cdef bytes _ref(uint64_t number, uint32_t index):
    """``REF.pack(REF_MARKER, number, index)``: a span's place in a chunk."""
    ref = PyBytes_FromStringAndSize(NULL, 13)
    cdef unsigned char* out = <unsigned char*>PyBytes_AS_STRING(ref)
    out[0] = REF_MARKER
    put_be64(out + 1, number)
    put_be32(out + 9, index)
    return ref


cdef bytes _encode(list raws, Py_ssize_t start, Py_ssize_t end):
    """``span_chunks.encode(raws[start:end])``: the count, the table of bounds, the spans."""
    cdef Py_ssize_t count = end - start, size = 4 * (count + 2), i, n
    for i in range(start, end):
        size += PyBytes_GET_SIZE(<bytes>raws[i])
    chunk = PyBytes_FromStringAndSize(NULL, size)
    cdef unsigned char* out = <unsigned char*>PyBytes_AS_STRING(chunk)
    cdef unsigned char* data = out + 4 * (count + 2)
    cdef uint32_t offset = 0
    put_be32(out, <uint32_t>count)
    put_be32(out + 4, 0)
    for i in range(start, end):
        raw = <bytes>raws[i]
        n = PyBytes_GET_SIZE(raw)
        memcpy(data + offset, PyBytes_AS_STRING(raw), n)
        offset += <uint32_t>n
        put_be32(out + 4 * (i - start + 2), offset)
    return chunk


cdef _flush_chunks(txn, dbs, chunk_numbers, dict pending, Py_ssize_t inline):
    """``ChunkWriter.flush``: the chunks, each after the tree's last key, and the references."""
    if not pending:
        return
    plans = [(keys, raws, partition([len(raw) for raw in raws], inline)) for keys, raws in pending.values()]
    cdef uint64_t number = chunk_numbers.take(txn, dbs, sum([len(plan[2]) for plan in plans]))
    cdef Py_ssize_t start, end, i
    put = txn.put
    spans_db = dbs.spans
    append = txn.cursor(db=dbs.span_chunks).put
    for keys, raws, ends in plans:
        start = 0
        for end in ends:
            for i in range(start, end):
                put((<list>keys)[i], _ref(number, <uint32_t>(i - start)), True, True, False, spans_db)
            append(u64(number), _encode(raws, start, end), True, True, True)
            number += 1
            start = end
