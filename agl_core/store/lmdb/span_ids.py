"""Which span ids an attempt already has, for ignoring resent spans, exactly and in bounded memory.

Two pieces, one on disk and one in memory:

- **The span-id log** (:mod:`span_id_log`): per attempt, its span ids appended in chunks, one page
  per attempt per commit.
- **A Bloom filter per attempt** in front of it: "certainly new" is answered in memory; "maybe
  present" (a resent span, or a false positive: up to 0.5% of the time in a full filter of a small
  attempt, 0.16% from 2,048 ids) is settled exactly by searching the attempt's log. A filter takes
  about 2 bytes per id when full (3 from 2,048 ids, 4 from 32,768: see ``LARGER_BITS_PER_ID``),
  so a fixed budget (``agl-server --span-id-filter-mb``, 32 MiB by default) covers millions of ids;
  filters beyond it are dropped (least recently used) and rebuilt from the log when needed
  (about 0.16 us per id with the compiled span loop's fill, ``span_path.filter_fill``; else
  ``_add_all``: 0.17 with numpy, 0.9 in Python).
- **A full filter grows a few chunks at a time.** Once an attempt's ids pass its filter's size, a
  filter four times larger is filled from the log by the attempt's next writes, ``GROW_ENTRIES``
  entries each (and the new ids go into both), then takes over. Filling it at once held the writer
  and the GIL for about 1 us per id: 2 ms at 2,048 ids, 15 ms at 16,384, 130 ms at 131,072, and
  every acknowledgement waiting behind the writer waited that long (``bench/span_growth_bench.py``).
  ``bench/store_bench.py --ack-only`` takes one attempt past 16,384 ids while eight Python writers
  run; their ack p99 fell from 6.1-6.7 to 4.5-4.6 ms.

Bits set for a write that was later rolled back only cause an extra exact check, never a wrong
answer, so nothing has to be invalidated when a transaction aborts. Only the thread running a write
group touches an instance: the store's writer, or the event loop for an inline commit (``writer.py``),
never both at once.
"""

from __future__ import annotations

import struct
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import lmdb

from agl_core.store.lmdb.span_id_log import CHUNK_KEY, ENTRY, Append, chunks, log_entry
from agl_core.store.lmdb.span_id_log import append as append_to_log

_ENTRIES = struct.Struct(f"{ENTRY}s")  # iter_unpack: a log's entries, split in C
BITS_PER_ID = 16
HASHES = 3  # with 16 bits per id: about 0.5% false positives
# A false positive costs a read of the attempt's whole log, so a filter sized for more ids takes more
# bits per id: 24 (0.16% false positives when full) from 2,048 ids, 32 (0.07%) from 32,768. With
# 16 bits, an attempt of 100,000 ids had a 3-7 ms read in about 5% of 10-span writes; and eight
# writers, each on an attempt nearing 16,384 ids (0.5% when full, a 0.4 ms read each), lost a
# quarter of their batches per second for two seconds until their filters had grown
# (bench/span_growth_bench.py, bench/store_bench.py --ack-only --go-client).
LARGER_BITS_PER_ID = ((1 << 15, 32), (1 << 11, 24))
MIN_BITS = 1 << 12
DEFAULT_BUDGET_BYTES = 32 << 20  # filters of all attempts together
# Log entries a write reads into a growing filter (at least, see SpanIdIndex._fill): about 0.1 ms
# (40 us once numpy is loaded, see _add_all).
# The old filter answers meanwhile, a few percent over its size at the end (10-span writes).
GROW_ENTRIES = 128
# Entries from which a fill loads numpy, if no earlier one did (Python: about 2 ms here).
LARGE_FILL = 2_048


class _Filter:
    """A Bloom filter over 17-byte log entries (3 hashes, a power-of-two number of bits)."""

    __slots__ = ("bits", "capacity", "count", "last_chunk", "mask", "next_chunk", "pending", "successor", "tail")

    def __init__(self, nbits: int, bits_per_id: int = BITS_PER_ID) -> None:
        self.bits = bytearray(nbits >> 3)
        self.mask = nbits - 1
        self.capacity = nbits // bits_per_id  # ids it takes before it grows
        self.count = 0
        # Entries added by operations of the current write transaction but not yet in the log.
        self.pending: set[bytes] = set()
        # While growing: the larger filter being filled, and the log chunks still to read into it.
        self.successor: _Filter | None = None
        self.next_chunk = 0
        self.last_chunk = -1
        # The number of the attempt's last log chunk as this index's last append left it, or -1:
        # the next append reads that chunk by its key instead of seeking the log's end (see ``span_id_log.append``).
        self.tail = -1

    @property
    def size(self) -> int:
        return self.mask + 1

    @property
    def held(self) -> int:
        """Bits held in memory, a growing filter's successor included."""
        return self.size + (self.successor.size if self.successor is not None else 0)

    def add(self, entry: bytes) -> bool:
        """Set the entry's bits; returns whether they were all set already ("maybe present")."""
        h = hash(entry)  # salted per process: the filter lives in this process only
        h1, h2, mask, bits = h & 0xFFFFFFFF, ((h >> 32) & 0xFFFFFFFF) | 1, self.mask, self.bits
        present = True
        p = h1 & mask
        if not bits[p >> 3] & (1 << (p & 7)):
            present = False
            bits[p >> 3] |= 1 << (p & 7)
        p = (h1 + h2) & mask
        if not bits[p >> 3] & (1 << (p & 7)):
            present = False
            bits[p >> 3] |= 1 << (p & 7)
        p = (h1 + 2 * h2) & mask
        if not bits[p >> 3] & (1 << (p & 7)):
            present = False
            bits[p >> 3] |= 1 << (p & 7)
        return present


def _add_all(flt: _Filter, entries: bytes) -> None:
    """Set the bits of every log entry in ``entries`` (whole chunks, joined), exactly as
    :meth:`_Filter.add` sets them one by one, without its answer.

    Filling a filter from an attempt's log (its first write after start-up or eviction, and a
    growing filter) in Python takes about 1.1 us per id, all of it holding the writer: 160 ms at
    150,000 ids. With numpy it takes about 0.17 us. numpy (about 60 ms and 15 MB, once per
    process) is imported by the first fill of ``LARGE_FILL`` entries or more, or in the background
    once a filter grows past that many ids (:func:`load_numpy_in_background`), so a server whose
    attempts stay small starts and runs without it; once loaded, every fill uses it. Where the
    store runs the compiled span loop it fills with that loop's ``add_all`` instead (0.16 us per
    id, at any size, and no numpy): this is the fill of the Python loop."""
    np = _loaded_numpy()
    if np is None and len(entries) >= LARGE_FILL * ENTRY:
        np = _import_numpy()  # waits for a background import under way (the import system's lock)
    if np is None:
        for (entry,) in _ENTRIES.iter_unpack(entries):
            flt.add(entry)
    else:
        _add_vectorized(flt, entries, np)


def _loaded_numpy() -> Any:
    """numpy once wholly imported (by this module or anyone else), else None: a module still being
    initialised is in ``sys.modules`` already and must not be used yet."""
    module = sys.modules.get("numpy")
    if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
        return None
    return module


_importer: threading.Thread | None = None


def load_numpy_in_background() -> None:
    """Import numpy on a thread of its own, once. A filter that starts growing past ``LARGE_FILL``
    ids calls this: its fills then take 40 us a write instead of 90 (``GROW_ENTRIES``), and the
    writer does not wait for the import (about 60 ms), which a first large fill otherwise pays."""
    global _importer
    if _importer is None and _loaded_numpy() is None:
        _importer = threading.Thread(target=_import_numpy, name="agl-numpy-import", daemon=True)
        _importer.start()


def _import_numpy() -> Any:
    # agl-server imports it with OPENBLAS_NUM_THREADS=1 (cli.main); a process embedding the store
    # keeps its own setting, which its own use of numpy may depend on.
    import numpy

    return numpy


def _add_vectorized(flt: _Filter, entries: bytes, np: Any) -> None:
    """:func:`_add_all` with numpy: the entries split and hashed by C loops (the same salted
    ``hash`` as the writer's), the probes computed and set by numpy."""
    count = len(entries) // ENTRY
    if not count:
        return
    hashed = np.fromiter(map(hash, map(itemgetter(0), _ENTRIES.iter_unpack(entries))), dtype=np.int64, count=count)
    h = hashed.view(np.uint64)
    h1 = h & np.uint64(0xFFFFFFFF)
    h2 = ((h >> np.uint64(32)) & np.uint64(0xFFFFFFFF)) | np.uint64(1)
    bits = np.frombuffer(flt.bits, dtype=np.uint8)  # a view: the filter's own bytearray is set
    mask = np.uint64(flt.mask)
    for i in range(HASHES):  # the probes of _Filter.add, in its order
        p = (h1 + np.uint64(i) * h2) & mask  # below 2^34 before the mask: no wrap-around
        np.bitwise_or.at(bits, p >> np.uint64(3), np.left_shift(np.uint8(1), (p & np.uint64(7)).astype(np.uint8)))


class SpanIdIndex:
    """Answers "is this span id new for this attempt?" exactly; records the new ones."""

    def __init__(
        self,
        budget_bits: int = DEFAULT_BUDGET_BYTES * 8,
        add_all: Callable[[_Filter, bytes], None] | None = None,
        append: Append | None = None,
    ) -> None:
        """:param budget_bits: filter bits kept in memory across attempts (default 32 MiB).
        :param add_all: sets a filter's bits for log entries, as :func:`_add_all` does (the default);
            the store passes the compiled span loop's where it runs that loop (``span_path``).
        :param append: appends entries to an attempt's log, as ``span_id_log.append`` does (the default);
            likewise the compiled loop's where the store runs it."""
        self._budget = budget_bits
        self._add_all = add_all or _add_all
        self._append = append or append_to_log
        self._filters: OrderedDict[tuple[int, int], _Filter] = OrderedDict()
        # Filters with pending entries: flush and discard_pending visit only these, so the cost of a
        # write does not grow with the number of attempts whose filters are cached.
        self._dirty: dict[tuple[int, int], _Filter] = {}
        self._bits = 0
        self.rebuilds = 0  # filters made from a whole log at once
        self.grows = 0  # filters that outgrew their size (each then filled a few chunks per write)
        self.filled = 0  # log entries read into growing filters
        self.exact_checks = 0
        # Attempts' logs appended to by flush(): one per attempt a write touched, never more.
        self.appends = 0

    # --- what /metrics reads (plain numbers: any thread may read them) ---------------------------------

    @property
    def filters(self) -> int:
        """Attempts whose filter is in memory."""
        return len(self._filters)

    @property
    def bytes_held(self) -> int:
        """Memory the filters hold, growing filters' successors included."""
        return self._bits // 8

    @property
    def budget_bytes(self) -> int:
        return self._budget // 8

    # --- the writer's calls --------------------------------------------------------------------------

    def add_if_new(self, txn: lmdb.Transaction, log_db: lmdb._Database, num: int, seq: int, span_id: bytes) -> bool:
        """True (and the id is recorded) if ``span_id`` is new for the attempt; False for a duplicate."""
        entry = log_entry(span_id)
        key = (num, seq)
        flt = self._filters.get(key)
        if flt is None:
            flt = self._rebuild(txn, log_db, num, seq)
        pending = flt.pending
        if entry in pending:
            return False
        if flt.add(entry):
            self.exact_checks += 1
            if self._in_log(txn, log_db, num, seq, entry):
                return False
        flt.count += 1
        if flt.successor is not None:
            flt.successor.add(entry)
        if not pending:
            self._dirty[key] = flt
        pending.add(entry)
        return True

    def flush(self, txn: lmdb.Transaction, log_db: lmdb._Database) -> None:
        """Append the ids recorded since the last flush to their attempts' logs (end of an operation)."""
        # ``_dirty`` is emptied only once every append succeeded: if one fails (a full map), the
        # transaction is rolled back and discard_pending must still find the filters not yet flushed.
        for (num, seq), flt in list(self._dirty.items()):
            if not flt.pending:
                continue
            self._filters.move_to_end((num, seq))  # least recently used first, for _evict
            appended = len(flt.pending)
            last_chunk = flt.tail = self._append(txn, log_db, num, seq, flt.pending, flt.tail)
            self.appends += 1
            flt.pending.clear()
            if flt.successor is None and flt.count > flt.capacity:
                flt.successor = _sized(4 * (flt.count + 64))
                if flt.count > LARGE_FILL and self._add_all is _add_all:
                    load_numpy_in_background()  # for _add_all's large fills; a compiled fill needs none
                flt.next_chunk, flt.last_chunk = 0, last_chunk
                self._bits += flt.successor.size
                self.grows += 1
            if flt.successor is not None:
                self._fill(txn, log_db, (num, seq), flt, flt.successor, max(GROW_ENTRIES, 2 * appended))
        self._dirty.clear()
        self._evict()

    def discard_pending(self) -> None:
        """An operation or transaction was rolled back: its ids are not in the log after all."""
        for flt in self._dirty.values():
            flt.pending.clear()
        self._dirty.clear()

    def forget(self, num: int, attempts: int) -> None:
        """Drop the filters of a deleted rollout's attempts (rollout numbers are never reused)."""
        for seq in range(1, attempts + 1):
            flt = self._filters.pop((num, seq), None)
            if flt is not None:
                self._bits -= flt.held
            self._dirty.pop((num, seq), None)

    # --- internals -----------------------------------------------------------------------------------

    def _rebuild(self, txn: lmdb.Transaction, log_db: lmdb._Database, num: int, seq: int) -> _Filter:
        """The attempt's filter made from its whole log: its first write since start-up or eviction."""
        entries = b"".join(chunks(txn, log_db, num, seq))
        count = len(entries) // ENTRY
        flt = _sized(count + 64)
        self._add_all(flt, entries)
        flt.count = count
        self._filters[(num, seq)] = flt
        self._bits += flt.size
        self.rebuilds += 1
        return flt

    def _fill(
        self,
        txn: lmdb.Transaction,
        log_db: lmdb._Database,
        key: tuple[int, int],
        flt: _Filter,
        successor: _Filter,
        entries: int,
    ) -> None:
        """Read about ``entries`` more log entries into ``successor``, the larger filter replacing
        ``flt``; once it has every chunk that existed when it was started (later ids were added to
        it directly), it takes over."""
        num, seq = key
        read = 0
        found = []
        while read < entries and flt.next_chunk <= flt.last_chunk:
            chunk = txn.get(CHUNK_KEY.pack(num, seq, flt.next_chunk), db=log_db)
            flt.next_chunk += 1
            if chunk is None:
                continue  # appended by a write that was rolled back
            found.append(chunk)
            read += len(chunk) // ENTRY
        self._add_all(successor, b"".join(found))
        self.filled += read
        if flt.next_chunk > flt.last_chunk:
            successor.count = flt.count
            successor.tail = flt.tail
            self._filters[key] = successor
            self._bits -= flt.size

    def _in_log(self, txn: lmdb.Transaction, log_db: lmdb._Database, num: int, seq: int, entry: bytes) -> bool:
        # One search of the joined log instead of one per chunk: a third less time at 16,384 ids.
        # Chunks hold whole entries, so entries stay aligned to ENTRY in the joined log.
        log = b"".join(chunks(txn, log_db, num, seq))
        at = log.find(entry)
        while at != -1:
            if at % ENTRY == 0:
                return True
            at = log.find(entry, at + 1)
        return False

    def _evict(self) -> None:
        while self._bits > self._budget and len(self._filters) > 1:
            key, flt = next(iter(self._filters.items()))
            if flt.pending:
                break  # in use by the running operation
            del self._filters[key]
            self._bits -= flt.held


def _sized(ids: int) -> _Filter:
    """An empty filter for ``ids`` ids: a power of two bits, at least MIN_BITS."""
    per_id = next((bits for least, bits in LARGER_BITS_PER_ID if ids >= least), BITS_PER_ID)
    nbits = 1 << (max(MIN_BITS, ids * per_id) - 1).bit_length()
    return _Filter(nbits, per_id)
