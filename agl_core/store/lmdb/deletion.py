"""Deleting rollouts with their attempts, spans, events and every index entry (DeleteRollouts).

A deletion is many short steps so a large one never holds LMDB's single write transaction for
long nor blocks the event loop:

- candidates are found in read transactions on the read pool, a bounded number of index entries
  per read (``SCAN_ENTRIES``);
- they are deleted by write operations of at most ``DELETE_BUDGET`` keys each (a rollout with more
  spans than that takes several operations: its spans go first, its records last), so each group
  commit that carries one stays in the tens of milliseconds and the writes of everyone else
  interleave;
- each write operation checks the rollout against the selection again, in its own transaction,
  so a rollout that changed between the read and the write is judged by what it is now.

Pages freed this way are reused by later writes (LMDB's free list): the data file stops growing
but does not shrink; a compacted backup (``backup.py``) is the smaller copy. A rollout's span
chunks (``span_chunks``) go with its spans; span resources (``span_resources``) are shared by many
rollouts' spans and stay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import lmdb

from agl_core.errors import FailedPreconditionError
from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_core.store import deletion
from agl_core.store.deletion import Selection
from agl_core.store.lmdb.core import LmdbCore
from agl_core.store.lmdb.records import RolloutRecord, Tx
from agl_core.store.lmdb.schema import EVENT_OF_ROLLOUT, STATUS_KEY, U64, Databases, attempt_key
from agl_core.store.lmdb.span_chunks import ChunkDeletion

# Keys one write operation deletes at most (spans mostly): about 20-60 ms of a transaction.
DELETE_BUDGET = 20_000
# Index entries one read looks at, and candidates it hands on, at most.
SCAN_ENTRIES = 4096
CANDIDATES = 256


@dataclass
class _Totals:
    rollouts: int = 0
    attempts: int = 0
    spans: int = 0
    skipped_active: int = 0

    def add(self, other: _Totals) -> None:
        self.rollouts += other.rollouts
        self.attempts += other.attempts
        self.spans += other.spans
        self.skipped_active += other.skipped_active


class DeletionMixin(LmdbCore):
    """DeleteRollouts."""

    async def delete_rollouts(self, request: s.DeleteRolloutsRequest) -> s.DeleteRolloutsResponse:
        sel = deletion.selection(request)
        self._ensure_started()
        totals = _Totals()
        response = s.DeleteRolloutsResponse()
        if sel.rollout_ids:
            nums, not_found, active = await self._read(lambda txn: _resolve_ids(txn, self.dbs, sel))
            if active and not sel.force:
                shown = ", ".join(repr(rid) for rid in active[:5]) + (" ..." if len(active) > 5 else "")
                raise FailedPreconditionError(
                    f"{len(active)} of the rollouts are not finished ({shown}); cancel them first "
                    "(UpdateRollout status=CANCELLED) or pass force to delete them anyway; nothing was deleted"
                )
            response.not_found_rollout_ids.extend(not_found)
            batches: AsyncIterator[list[int]] = _in_chunks(nums)
        else:
            batches = self._selected_batches(sel, totals)
        async for nums in batches:
            if sel.dry_run:
                totals.add(await self._read(lambda txn, nums=nums: _count(txn, self.dbs, sel, nums)))  # type: ignore[misc]
            else:
                await self._delete_nums(sel, nums, totals)
        response.deleted_rollouts = totals.rollouts
        response.deleted_attempts = totals.attempts
        response.deleted_spans = totals.spans
        response.skipped_active = totals.skipped_active
        return response

    async def _selected_batches(self, sel: Selection, totals: _Totals) -> AsyncIterator[list[int]]:
        """Numbers of the rollouts in the selection, in batches, by the status index."""
        for status in sel.scan_statuses():
            position = STATUS_KEY.pack(status, 0)
            while position is not None:
                nums, position, skipped = await self._read(
                    lambda txn, status=status, position=position: _scan_status(txn, self.dbs, sel, status, position)  # type: ignore[misc]
                )
                totals.skipped_active += skipped
                if nums:
                    yield nums

    async def _delete_nums(self, sel: Selection, nums: list[int], totals: _Totals) -> None:
        """Delete the rollouts ``nums`` in write operations of a bounded number of keys each."""
        start = 0
        while start < len(nums):
            done, part = await self._write(
                lambda tx, start=start: self._delete_op(tx, sel, nums[start:])  # type: ignore[misc]
            )
            start += done
            totals.add(part)

    def _delete_op(self, tx: Tx, sel: Selection, nums: list[int]) -> tuple[int, _Totals]:
        """Delete from ``nums`` on until the key budget is spent; returns (rollouts finished, totals).
        Runs on the writer thread."""
        part = _Totals()
        budget = DELETE_BUDGET
        for done, num in enumerate(nums):
            record = tx.rollout_by_num(num)
            if record is None or not sel.matches(record.pb):
                continue
            if Selection.active(record.pb) and not sel.force:
                part.skipped_active += 1
                continue
            chunks = ChunkDeletion(tx.txn, self.dbs)
            spans, finished = _delete_prefix(tx.txn, self.dbs.spans, U64.pack(num), budget, chunks)
            chunks.finish()
            part.spans += spans
            budget -= spans
            if not finished:
                return done, part  # this rollout's spans continue in the next operation
            part.attempts += self._purge(tx, record)
            part.rollouts += 1
            budget -= 8 + 2 * record.attempts
            if budget <= 0:
                return done + 1, part
        return len(nums), part

    def _purge(self, tx: Tx, record: RolloutRecord) -> int:
        """Everything of ``record`` but its spans (already gone); returns the attempts deleted."""
        num = record.num
        prefix = U64.pack(num)
        attempts = 0
        for seq in range(1, record.attempts + 1):
            raw = tx.txn.pop(attempt_key(num, seq), db=self.dbs.attempts)
            if raw is None:
                continue
            attempt = t.Attempt.FromString(raw)
            tx.txn.delete(attempt.attempt_id.encode(), db=self.dbs.attempt_ids)
            attempts += 1
            worker = tx.find_worker(attempt.worker_id) if attempt.worker_id else None
            if worker is not None and worker.current_attempt_id == attempt.attempt_id:
                # A forced deletion of a running attempt: its worker no longer holds known work.
                worker.status = t.WORKER_STATUS_UNKNOWN
                worker.current_rollout_id = worker.current_attempt_id = ""
                tx.put_worker(worker)
        _delete_prefix(tx.txn, self.dbs.span_id_log, prefix, None)
        self._span_ids.forget(num, record.attempts)
        tx.txn.delete(prefix, db=self.dbs.span_seqs)
        cursor = tx.txn.cursor(db=self.dbs.rollout_events)
        if cursor.set_range(prefix):
            while cursor.key().startswith(prefix):
                tx.txn.delete(U64.pack(EVENT_OF_ROLLOUT.unpack(cursor.key())[1]), db=self.dbs.events)
                if not cursor.delete():
                    break
        tx.remove_rollout(record)
        return attempts


def _delete_prefix(
    txn: lmdb.Transaction,
    db: lmdb._Database,
    prefix: bytes,
    budget: int | None,
    on_value: Callable[[bytes], None] | None = None,
) -> tuple[int, bool]:
    """Delete keys starting with ``prefix``, at most ``budget``, handing each one's value to
    ``on_value`` first; returns (deleted, whether all are gone)."""
    cursor = txn.cursor(db=db)
    deleted = 0
    if not cursor.set_range(prefix):
        return 0, True
    while cursor.key().startswith(prefix):
        if budget is not None and deleted >= budget:
            return deleted, False
        if on_value is not None:
            on_value(cursor.value())
        deleted += 1
        if not cursor.delete():  # moves to the next key; False past the last one
            break
    return deleted, True


def _count_prefix(txn: lmdb.Transaction, db: lmdb._Database, prefix: bytes) -> int:
    cursor = txn.cursor(db=db)
    if not cursor.set_range(prefix):
        return 0
    count = 0
    for key in cursor.iternext(values=False):
        if not key.startswith(prefix):
            break
        count += 1
    return count


def _resolve_ids(txn: lmdb.Transaction, dbs: Databases, sel: Selection) -> tuple[list[int], list[str], list[str]]:
    """(numbers of the named rollouts in the selection, ids of no rollout, ids not finished)."""
    tx = Tx(txn, dbs)
    nums: list[int] = []
    not_found: list[str] = []
    active: list[str] = []
    for rollout_id in sel.rollout_ids:
        record = tx.find_rollout(rollout_id)
        if record is None:
            not_found.append(rollout_id)
        elif sel.matches(record.pb):
            nums.append(record.num)
            if Selection.active(record.pb):
                active.append(rollout_id)
    return nums, not_found, active


def _scan_status(
    txn: lmdb.Transaction, dbs: Databases, sel: Selection, status: int, position: bytes
) -> tuple[list[int], bytes | None, int]:
    """Up to CANDIDATES rollouts of ``status`` in the selection from ``position`` on, looking at no
    more than SCAN_ENTRIES entries; returns (numbers, where to go on or None, active ones skipped)."""
    tx = Tx(txn, dbs)
    prefix = bytes([status])
    cursor = txn.cursor(db=dbs.status_index)
    nums: list[int] = []
    skipped = 0
    if not cursor.set_range(position):
        return nums, None, skipped
    for scanned, key in enumerate(cursor.iternext(values=False)):
        if not key.startswith(prefix):
            return nums, None, skipped
        if scanned >= SCAN_ENTRIES or len(nums) >= CANDIDATES:
            return nums, bytes(key), skipped
        num = STATUS_KEY.unpack(key)[1]
        record = tx.rollout_by_num(num)
        if record is None or not sel.matches(record.pb):
            continue
        if Selection.active(record.pb) and not sel.force:
            skipped += 1
            continue
        nums.append(num)
    return nums, None, skipped


def _count(txn: lmdb.Transaction, dbs: Databases, sel: Selection, nums: list[int]) -> _Totals:
    """What deleting ``nums`` would delete (a dry run)."""
    tx = Tx(txn, dbs)
    totals = _Totals()
    for num in nums:
        record = tx.rollout_by_num(num)
        if record is None:
            continue
        totals.rollouts += 1
        totals.attempts += record.attempts
        totals.spans += _count_prefix(txn, dbs.spans, U64.pack(num))
    return totals


async def _in_chunks(nums: list[int]) -> AsyncIterator[list[int]]:
    for i in range(0, len(nums), CANDIDATES):
        yield nums[i : i + CANDIDATES]
