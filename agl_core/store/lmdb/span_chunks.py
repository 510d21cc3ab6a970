"""Spans are stored packed: the spans one write adds to a rollout go, back to back, into values of
``span_chunks`` (chunks), and each ``spans`` entry holds a reference to its span's place in a
chunk rather than the span itself. Spans of up to ``WHOLE_BYTES`` are still stored whole.

Why: LMDB keeps a value on a shared 4 KiB page only up to about 2 KiB, gives a larger one pages of
its own (the last one partly empty), and splits a full leaf page in two. Stored one per value, a
1.1 KB span took 2.1 KB of data file and a 4.1 KB span 8.3 KB (``bench/span_storage_bench.py``).
Chunks are appended at the end of their tree in write order (``MDB_APPEND``) and sized to fill
their pages (:func:`partition`).

A reference starts with the byte 0x01, which no serialized Span does (a protobuf tag's field
number is never 0), nor a span whose resource was cut out (span_resources.py marks those with
0x00), so spans stored whole, by this release or by earlier ones (schema versions 2 and 3), read
beside references. Chunk numbers follow the store's order of writes and are never reused; a chunk
holds one rollout's spans only, so deleting a rollout deletes its chunks with its ``spans`` entries.
"""

from __future__ import annotations

import functools
import struct
from itertools import accumulate
from typing import cast

import lmdb

from agl_core.store.lmdb.schema import U64, Databases, MetaKey, read_counter

REF = struct.Struct(">BQI")  # REF_MARKER, the chunk's number, the span's index in it
REF_MARKER = 1
_REF_HEAD = struct.Struct(">BQ")
_U32 = struct.Struct(">I")
_BOUNDS = struct.Struct(">II")
# A span this small is stored whole in its ``spans`` entry: several share a leaf page there, and a
# reference plus its share of a chunk would take more (bench/span_storage_bench.py).
WHOLE_BYTES = 700
# A chunk takes no more spans once it holds this many bytes: reading one span reads its whole
# chunk, and a deleted chunk leaves a run of free pages that only a chunk as large can reuse whole.
CHUNK_BYTES = 32 * 1024
# Per span in a chunk: its end offset in the chunk's table.
_PER_SPAN = 4


def is_ref(value: bytes) -> bool:
    """Whether a ``spans`` value is a reference into a chunk (not a span stored whole)."""
    return value[:1] == b"\x01"


def inline_bytes(page_size: int) -> int:
    """The largest value LMDB keeps on a shared leaf page (two to a page), with room to spare for
    the node and key; a larger one gets pages of its own, the last one partly empty."""
    return page_size // 2 - 48


def partition(sizes: list[int], inline: int) -> list[int]:
    """Where to cut a rollout's spans of one write (their sizes) into chunks: the end index of each
    chunk. Chunks of up to ``CHUNK_BYTES``; the last few kilobytes go into chunks small enough to
    share leaf pages, rather than one that would leave most of its last page empty."""
    count = len(sizes)
    remaining = sum(sizes) + _PER_SPAN * count
    if 3 * inline < remaining <= CHUNK_BYTES:
        return [count]  # the common case: one chunk
    ends: list[int] = []
    i = 0
    while i < count:
        target = inline - 8 if remaining <= 3 * inline else CHUNK_BYTES
        size = sizes[i] + _PER_SPAN
        i += 1
        while i < count and size + sizes[i] + _PER_SPAN <= target:
            size += sizes[i] + _PER_SPAN
            i += 1
        ends.append(i)
        remaining -= size
    return ends


def encode(raws: list[bytes]) -> bytes:
    """A chunk: the number of spans, a table of their bounds (0, then each one's end, relative to
    the data), then the spans back to back."""
    return b"".join([_table(len(raws)).pack(len(raws), 0, *accumulate(map(len, raws))), *raws])


@functools.cache
def _table(count: int) -> struct.Struct:
    return struct.Struct(f">{count + 2}I")


@functools.cache
def _index(i: int) -> bytes:
    return _U32.pack(i)


class ChunkNumbers:
    """Issues chunk numbers on the thread running writes, in order and never twice: entries of a rollout
    whose deletion spans several writes may still refer to a deleted chunk's number, and a new
    chunk under that number would be read (and then deleted) in its place. Within a process the
    count only goes up (numbers of a write rolled back are skipped); at start it resumes past both
    the last chunk stored and the highest number a deletion removed (kept in ``meta``)."""

    def __init__(self) -> None:
        self._next = 0  # 0: not read from the store yet

    def take(self, txn: lmdb.Transaction, dbs: Databases, count: int) -> int:
        """The first of ``count`` new numbers."""
        if not self._next:
            cursor = txn.cursor(db=dbs.span_chunks)
            last = U64.unpack(cursor.key())[0] if cursor.last() else 0
            self._next = max(last, read_counter(txn, dbs.meta, MetaKey.SPAN_CHUNK_DELETED)) + 1
        first = self._next
        self._next += count
        return first


class ChunkWriter:
    """Packs the spans one write operation stores, each rollout's into chunks of its own.
    :meth:`add` takes a span and its ``spans`` key; :meth:`flush` writes the chunks and the entries."""

    def __init__(self, txn: lmdb.Transaction, dbs: Databases, numbers: ChunkNumbers, page_size: int) -> None:
        self._txn = txn
        self._dbs = dbs
        self._numbers = numbers
        # (Not ``_inline``: mypyc names the C field after the attribute, and ``__inline`` is a keyword to gcc.)
        self._inline_limit = inline_bytes(page_size)
        self._pending: dict[int, tuple[list[bytes], list[bytes]]] = {}  # num -> (spans keys, spans)

    def add(self, num: int, key: bytes, raw: bytes) -> None:
        if len(raw) <= WHOLE_BYTES:
            self._txn.put(key, raw, db=self._dbs.spans)
            return
        pending = self._pending.get(num)
        if pending is None:
            pending = self._pending[num] = ([], [])
        pending[0].append(key)
        pending[1].append(raw)

    def flush(self) -> None:
        """Write the chunks and the ``spans`` entries that refer to them. Chunk numbers only grow, so
        each chunk goes after the tree's last key (as ``MDB_APPEND`` needs)."""
        if not self._pending:
            return
        inline = self._inline_limit
        plans = [(keys, raws, partition(list(map(len, raws)), inline)) for keys, raws in self._pending.values()]
        dbs = self._dbs
        number = self._numbers.take(self._txn, dbs, sum(len(ends) for *_, ends in plans))
        cursor = self._txn.cursor(db=dbs.span_chunks)
        put = self._txn.put
        spans_db = dbs.spans
        for keys, raws, ends in plans:
            start = 0
            for end in ends:
                head = _REF_HEAD.pack(REF_MARKER, number)
                for i, key in enumerate(keys[start:end]):
                    put(key, head + _index(i), db=spans_db)
                cursor.put(U64.pack(number), encode(raws[start:end]), append=True)
                number += 1
                start = end
        self._pending.clear()


class ChunkReader:
    """Resolves ``spans`` values to span bytes within one read transaction. Consecutive spans of a
    rollout mostly share a chunk, so the last chunk read is kept."""

    def __init__(self, txn: lmdb.Transaction, db: lmdb._Database) -> None:
        self._txn = txn
        self._db = db
        self._number = 0
        self._chunk = b""
        self._data = 0  # where the chunk's spans start

    def span(self, value: bytes) -> bytes | None:
        """The span ``value`` stands for, or None when its chunk is gone (its rollout is being
        deleted, in operations of bounded size: entries of a later one outlive the chunk)."""
        if not is_ref(value):
            return value  # stored whole
        _, number, index = REF.unpack(value)
        if number != self._number:
            chunk = cast("bytes | None", self._txn.get(U64.pack(number), db=self._db))
            if chunk is None:
                return None
            self._number, self._chunk = number, chunk
            self._data = _U32.size * (_U32.unpack_from(chunk)[0] + 2)
        start, end = _BOUNDS.unpack_from(self._chunk, _U32.size * (index + 1))
        return self._chunk[self._data + start : self._data + end]


class ChunkDeletion:
    """Deletes the chunks of the ``spans`` entries a deletion removes: call it with each entry's
    value as the entry goes, then :meth:`finish` in the same transaction."""

    def __init__(self, txn: lmdb.Transaction, dbs: Databases) -> None:
        self._txn = txn
        self._dbs = dbs
        self._last = 0
        self._highest = 0

    def __call__(self, value: bytes) -> None:
        if not is_ref(value):
            return
        number = REF.unpack(value)[1]
        if number != self._last:
            # Entries of one chunk are mostly adjacent; a chunk already deleted answers False.
            self._txn.delete(U64.pack(number), db=self._dbs.span_chunks)
            self._last = number
            self._highest = max(self._highest, number)

    def finish(self) -> None:
        """Record the highest chunk number deleted, so that no new chunk takes it (ChunkNumbers)."""
        meta = self._dbs.meta
        if self._highest > read_counter(self._txn, meta, MetaKey.SPAN_CHUNK_DELETED):
            self._txn.put(MetaKey.SPAN_CHUNK_DELETED, U64.pack(self._highest), db=meta)
