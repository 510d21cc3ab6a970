"""The dispatch index: which queued rollout a worker gets next, in O(log n).

The ``queue`` sub-database (queue sequence -> rollout id) is the durable record of what waits;
this index orders it for dispatch and is rebuilt from it when the store opens. Rollouts are
grouped by (namespace, queue) and, inside a queue, by *label class* (the exact set of labels;
a fleet has few distinct sets, e.g. ``lang=go``, ``lang=ts``, none). Each class is a heap on
(-priority, queue sequence), so its head is its best rollout. A dispatch looks at the heads of
the classes of the queues the worker serves whose labels its selector matches (the match is
cached per selector and class) and pops the best: O(queues x classes + log n), independent of
how many rollouts wait or how many workers ask.

The index is a hint, checked against the transaction: the caller (the write that claims) drops
an entry whose rollout left the queue another way (cancelled, claimed by an earlier write).
Entries popped by a write that is rolled back are put back by :meth:`restore`; a stale copy that
results is dropped when it is reached.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import lmdb

from agl_core.store import routing, rules
from agl_core.store.lmdb.records import Tx
from agl_core.store.lmdb.schema import U64, Databases
from agl_core.store.routing import Selector

LabelKey = tuple[tuple[str, str], ...]
# (-priority, queue sequence, rollout id): the heap order is dispatch order.
Entry = tuple[int, int, str]
MATCH_CACHE_LIMIT = 65536


@dataclass
class _LabelClass:
    labels: dict[str, str]
    heap: list[Entry] = field(default_factory=list)


@dataclass(frozen=True)
class Popped:
    namespace: str
    queue: str
    labels: LabelKey
    entry: Entry

    @property
    def seq(self) -> int:
        return self.entry[1]

    @property
    def rollout_id(self) -> str:
        return self.entry[2]


class DispatchIndex:
    """In-memory order of the queued rollouts; safe to use from the writer thread and the loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[tuple[str, str], dict[LabelKey, _LabelClass]] = {}
        self._pending: dict[tuple[int, str], Popped] = {}
        self._matches: dict[tuple[str, LabelKey], bool] = {}
        self._size = 0

    def __len__(self) -> int:
        """Entries held, stale ones included (an upper bound of the rollouts waiting)."""
        return self._size

    def push(
        self, namespace: str, queue: str, labels: Mapping[str, str], priority: int, seq: int, rollout_id: str
    ) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._push(namespace, queue, key, (-priority, seq, rollout_id))

    def _push(self, namespace: str, queue: str, key: LabelKey, entry: Entry) -> None:
        classes = self._queues.setdefault((namespace, queue), {})
        label_class = classes.get(key)
        if label_class is None:
            label_class = classes[key] = _LabelClass(dict(key))
        heapq.heappush(label_class.heap, entry)
        self._size += 1

    def _best(
        self, namespace: str, queues: Sequence[str], selector: Selector
    ) -> tuple[tuple[str, str], LabelKey, _LabelClass] | None:
        best: tuple[tuple[str, str], LabelKey, _LabelClass] | None = None
        for queue in queues:
            classes = self._queues.get((namespace, queue))
            if not classes:
                continue
            for key, label_class in classes.items():
                if best is not None and label_class.heap[0] >= best[2].heap[0]:
                    continue
                if self._matches_class(selector, key, label_class):
                    best = ((namespace, queue), key, label_class)
        return best

    def _matches_class(self, selector: Selector, key: LabelKey, label_class: _LabelClass) -> bool:
        if selector.empty:
            return True
        cache_key = (selector.text, key)
        hit = self._matches.get(cache_key)
        if hit is None:
            if len(self._matches) >= MATCH_CACHE_LIMIT:
                self._matches.clear()
            hit = self._matches[cache_key] = selector.matches(label_class.labels)
        return hit

    def has_match(self, namespace: str, queues: Sequence[str], selector: Selector) -> bool:
        """Whether some entry (maybe stale) waits for a worker with these queues and selector."""
        with self._lock:
            return self._best(namespace, queues, selector) is not None

    def count_matching(self, namespace: str, queues: Sequence[str], selector: Selector, cap: int) -> int:
        """Entries (stale ones included) a worker with these queues and selector could take, counted
        up to ``cap``: how many claims are worth making for such workers."""
        count = 0
        with self._lock:
            for queue in queues:
                for key, label_class in (self._queues.get((namespace, queue)) or {}).items():
                    if self._matches_class(selector, key, label_class):
                        count += len(label_class.heap)
                        if count >= cap:
                            return cap
        return count

    def pop(self, namespace: str, queues: Sequence[str], selector: Selector) -> Popped | None:
        """Take the best entry for the worker; it stays pending until :meth:`confirm`."""
        with self._lock:
            best = self._best(namespace, queues, selector)
            if best is None:
                return None
            (ns, queue), key, label_class = best
            entry = heapq.heappop(label_class.heap)
            self._size -= 1
            if not label_class.heap:
                del self._queues[(ns, queue)][key]
                if not self._queues[(ns, queue)]:
                    del self._queues[(ns, queue)]
            popped = Popped(ns, queue, key, entry)
            self._pending[(entry[1], entry[2])] = popped
            return popped

    def confirm(self, popped: Sequence[Popped]) -> None:
        """The writes that popped these committed: forget them."""
        with self._lock:
            for item in popped:
                self._pending.pop((item.seq, item.rollout_id), None)

    def restore(self) -> None:
        """A write was rolled back: put back every entry popped and not yet confirmed. Entries of
        writes that did commit come back too and are dropped as stale when reached."""
        with self._lock:
            for item in self._pending.values():
                self._push(item.namespace, item.queue, item.labels, item.entry)
            self._pending.clear()


def rebuild(env: lmdb.Environment, dbs: Databases) -> DispatchIndex:
    """The index of what the ``queue`` sub-database holds, dropping its stale entries (rollouts
    that left the queue another way): O(n log n) once, when the store opens."""
    index = DispatchIndex()
    with env.begin(write=True) as txn:
        tx = Tx(txn, dbs)
        stale = []
        for key, rollout_id in txn.cursor(db=dbs.queue):
            seq = U64.unpack(key)[0]
            record = tx.find_rollout(rollout_id.decode())
            if record is None or record.queue_seq != seq or record.pb.status not in rules.QUEUED_ROLLOUT:
                stale.append(key)
                continue
            pb = record.pb
            index.push(
                routing.namespace(pb.namespace), routing.queue(pb.queue), pb.labels, pb.priority, seq, pb.rollout_id
            )
        for key in stale:
            txn.delete(key, db=dbs.queue)
    return index
