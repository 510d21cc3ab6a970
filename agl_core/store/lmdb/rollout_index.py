"""The rollout index: rollouts by (status, mode, creation number), with a count per (status, mode).

It lets QueryRollouts answer a page and its ``total`` without reading every rollout: the page is a
merge of a few key-only cursors in creation order, and the total is a sum of counts. Both are kept
in the same transaction as the rollout record (``records.Tx``).

A data directory written by an agl without this index (or by one that did not keep it in step) is
re-indexed when the store opens: the index remembers the last event id it saw
(``MetaKey.ROLLOUT_INDEX_EVENT``), and every status change appends an event, so a mismatch means
the index is stale. Changing only a rollout's mode with an older agl is not detected; a data
directory used that way is re-indexed by deleting the key (or running ``rebuild``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Iterable, Iterator

import lmdb

from agl_core.proto import types_pb2 as t
from agl_core.store.lmdb.schema import INDEX_KEY, ROLLOUT_HEADER, U64, Databases, MetaKey, read_counter

logger = logging.getLogger(__name__)

_STATUS_BYTE = 0
_MODE_BYTE = 1


def index_key(status: int, mode: int, num: int) -> bytes:
    return INDEX_KEY.pack(status, mode, num)


def group(status: int, mode: int) -> bytes:
    return bytes([status, mode])


def count(txn: lmdb.Transaction, dbs: Databases, prefix: bytes) -> int:
    raw = txn.get(prefix, db=dbs.rollout_counts)
    return U64.unpack(raw)[0] if raw else 0


def groups(txn: lmdb.Transaction, dbs: Databases, statuses: Iterable[int] | None, mode: int | None) -> list[bytes]:
    """The (status, mode) prefixes that hold rollouts, restricted to ``statuses`` and ``mode``."""
    found = []
    cursor = txn.cursor(db=dbs.rollout_counts)
    for key, value in cursor:
        if U64.unpack(value)[0] == 0:
            continue
        if statuses is not None and key[_STATUS_BYTE] not in statuses:
            continue
        if mode is not None and key[_MODE_BYTE] != mode:
            continue
        found.append(bytes(key))
    return found


def total(txn: lmdb.Transaction, dbs: Databases, prefixes: Iterable[bytes]) -> int:
    return sum(count(txn, dbs, prefix) for prefix in prefixes)


def _nums(txn: lmdb.Transaction, dbs: Databases, prefix: bytes, desc: bool) -> Iterator[int]:
    """Numbers of the rollouts under ``prefix``, in creation order (or reversed)."""
    cursor = txn.cursor(db=dbs.rollout_index)
    if desc:
        after = prefix[:-1] + bytes([prefix[-1] + 1]) if prefix[-1] < 255 else bytes([prefix[0] + 1])
        found = cursor.prev() if cursor.set_range(after) else cursor.last()
        while found:
            key = cursor.key()
            if not key.startswith(prefix):
                return
            yield INDEX_KEY.unpack(key)[2]
            found = cursor.prev()
    else:
        if not cursor.set_range(prefix):
            return
        for key in cursor.iternext(values=False):
            if not key.startswith(prefix):
                return
            yield INDEX_KEY.unpack(key)[2]


def page_nums(
    txn: lmdb.Transaction,
    dbs: Databases,
    prefixes: list[bytes],
    *,
    by_status: bool,
    desc: bool,
    offset: int,
    limit: int,
) -> list[int]:
    """Numbers of the rollouts on one page, sorted by creation (or by status, then creation)."""
    if by_status:
        # Statuses in order, each a merge over its modes by creation.
        by: dict[int, list[bytes]] = {}
        for prefix in prefixes:
            by.setdefault(prefix[_STATUS_BYTE], []).append(prefix)
        nums: Iterable[int] = (
            num
            for status in sorted(by, reverse=desc)
            for num in heapq.merge(*(_nums(txn, dbs, p, desc) for p in by[status]), reverse=desc)
        )
    else:
        nums = heapq.merge(*(_nums(txn, dbs, p, desc) for p in prefixes), reverse=desc)
    return list(itertools.islice(nums, offset, offset + limit))


# --- maintenance (in the writer's transaction) --------------------------------------------------------


def add(txn: lmdb.Transaction, dbs: Databases, counts: dict[bytes, int], status: int, mode: int, num: int) -> None:
    txn.put(index_key(status, mode, num), b"", db=dbs.rollout_index)
    prefix = group(status, mode)
    counts[prefix] = counts.get(prefix, 0) + 1


def remove(txn: lmdb.Transaction, dbs: Databases, counts: dict[bytes, int], status: int, mode: int, num: int) -> None:
    txn.delete(index_key(status, mode, num), db=dbs.rollout_index)
    prefix = group(status, mode)
    counts[prefix] = counts.get(prefix, 0) - 1


def apply_counts(txn: lmdb.Transaction, dbs: Databases, counts: dict[bytes, int]) -> None:
    for prefix, delta in counts.items():
        if delta:
            txn.put(prefix, U64.pack(count(txn, dbs, prefix) + delta), db=dbs.rollout_counts)
    counts.clear()


def ensure(env: lmdb.Environment, dbs: Databases) -> None:
    """Rebuild the index if it is not in step with the event log (see the module docstring)."""
    with env.begin() as txn:
        last_event = read_counter(txn, dbs.meta, MetaKey.LAST_EVENT_ID)
        indexed = read_counter(txn, dbs.meta, MetaKey.ROLLOUT_INDEX_EVENT)
        rollouts = txn.stat(dbs.rollouts)["entries"]
        counted = sum(U64.unpack(v)[0] for v in txn.cursor(db=dbs.rollout_counts).iternext(keys=False))
    if indexed == last_event and counted == rollouts:
        return
    rebuild(env, dbs)


def rebuild(env: lmdb.Environment, dbs: Databases) -> int:
    """Index every stored rollout afresh (one write transaction); returns how many."""
    with env.begin(write=True) as txn:
        txn.drop(dbs.rollout_index, delete=False)
        txn.drop(dbs.rollout_counts, delete=False)
        counts: dict[bytes, int] = {}
        indexed = 0
        for raw in txn.cursor(db=dbs.rollouts).iternext(keys=False):
            num = ROLLOUT_HEADER.unpack_from(raw)[0]
            status, mode = _status_and_mode(raw[ROLLOUT_HEADER.size :])
            add(txn, dbs, counts, status, mode, num)
            indexed += 1
        apply_counts(txn, dbs, counts)
        last_event = read_counter(txn, dbs.meta, MetaKey.LAST_EVENT_ID)
        txn.put(MetaKey.ROLLOUT_INDEX_EVENT, U64.pack(last_event), db=dbs.meta)
    logger.info("indexed %d rollouts for queries (a data directory from an earlier agl)", indexed)
    return indexed


def _status_and_mode(raw: bytes) -> tuple[int, int]:
    pb = t.Rollout.FromString(raw)
    return pb.status, pb.mode
