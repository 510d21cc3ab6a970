"""Which span ids an attempt already has, for ignoring resent spans.

Span keys are ``rollout num | attempt seq | span seq | span id``, so the spans of an attempt are
stored in sequence order and their ids can be read back from the keys alone. A separate index
keyed by span id would put every insert on a random B-tree page (one dirty 4 KiB page per 20-byte
entry, measured as the largest cost of a commit); instead the writer keeps the id sets of the
attempts it is writing to in memory, rebuilds a set from a keys-only scan when it is missing, and
evicts the least recently used sets beyond a budget. The store on disk stays the single source
of truth: the writer clears the cache whenever a write is rolled back.

Only the writer thread touches an instance.
"""

from __future__ import annotations

from collections import OrderedDict

import lmdb

from agl_core.store.lmdb.schema import ATTEMPT_KEY, SPAN_PREFIX


class SpanIdCache:
    def __init__(self, budget: int = 500_000) -> None:
        """:param budget: span ids kept across all cached attempts (about 70 bytes each)."""
        self._budget = budget
        self._sets: OrderedDict[tuple[int, int], set[bytes]] = OrderedDict()
        self._size = 0
        self.rebuilds = 0

    def ids(self, txn: lmdb.Transaction, spans_db: lmdb._Database, num: int, seq: int) -> set[bytes]:
        """The span ids stored for attempt ``seq`` of rollout ``num`` (the live set: add to it)."""
        key = (num, seq)
        known = self._sets.get(key)
        if known is not None:
            self._sets.move_to_end(key)
            return known
        known = set()
        prefix = ATTEMPT_KEY.pack(num, seq)
        cursor = txn.cursor(db=spans_db)
        if cursor.set_range(prefix):
            for stored in cursor.iternext(values=False):
                if not stored.startswith(prefix):
                    break
                known.add(stored[SPAN_PREFIX.size :])
        self.rebuilds += 1
        self._sets[key] = known
        self._size += len(known)
        return known

    def added(self, count: int) -> None:
        """Account for ``count`` ids added to sets returned by :meth:`ids`; evict beyond the budget."""
        self._size += count
        while self._size > self._budget and len(self._sets) > 1:
            _, evicted = self._sets.popitem(last=False)
            self._size -= len(evicted)

    def clear(self) -> None:
        self._sets.clear()
        self._size = 0
