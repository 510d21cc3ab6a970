"""Reading and writing store records inside one LMDB transaction, applying the lifecycle rules.

:class:`Tx` wraps a transaction. Write operations (run by the writer thread) and reads (run on
the event loop) use the same accessors; only writes pass an :class:`Effects` to record what must
happen after the commit (wake waiters, publish events, arm the watchdog).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import lmdb
from google.protobuf import timestamp_pb2

from agl_core.errors import NotFoundError
from agl_core.proto import types_pb2 as t
from agl_core.store import routing, rules
from agl_core.store.lmdb import rollout_index
from agl_core.store.lmdb.schema import (
    EVENT_OF_ROLLOUT,
    ROLLOUT_HEADER,
    STATUS_KEY,
    U64,
    Databases,
    MetaKey,
    attempt_key,
)


@dataclass
class Effects:
    """What one write operation changed that others must hear about once it is committed."""

    events: list[t.RolloutEvent] = field(default_factory=list)
    enqueued: int = 0
    # (deadline, rollout num, attempt sequence) for the watchdog.
    watch: list[tuple[float, int, int]] = field(default_factory=list)
    spans: int = 0
    # Rollouts that entered the queue: (namespace, queue, labels, priority, queue sequence, rollout
    # id). The dispatch index learns them once committed, so a rolled-back write never shows there.
    queued: list[tuple[str, str, dict[str, str], int, int, str]] = field(default_factory=list)
    # Dispatch-index entries this write claimed (dispatch.Popped); confirmed once committed.
    popped: list[Any] = field(default_factory=list)
    # Attempts created (claimed, started or re-run by hand), PREPARING or RUNNING.
    attempts_started: int = 0

    def merge(self, other: Effects) -> None:
        """Add the effects of a nested operation that committed into its parent."""
        self.events.extend(other.events)
        self.enqueued += other.enqueued
        self.watch.extend(other.watch)
        self.spans += other.spans
        self.queued.extend(other.queued)
        self.popped.extend(other.popped)
        self.attempts_started += other.attempts_started


@dataclass
class RolloutRecord:
    num: int
    queue_seq: int
    attempts: int
    pb: t.Rollout


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


class Tx:
    def __init__(self, txn: lmdb.Transaction, dbs: Databases, effects: Effects | None = None, now_ns: int = 0):
        self.txn = txn
        self.dbs = dbs
        self.effects = effects
        self.now_ns = now_ns
        self.now = now_ns / 1e9
        # Counters of the meta database, read once per operation and written back by flush().
        self._counters: dict[bytes, int] = {}
        # Changes to the rollout index's counts, applied by flush() (one put per count per operation).
        self._index_counts: dict[bytes, int] = {}

    def next_meta(self, key: bytes) -> int:
        """The next value of a meta counter (counters start at 1)."""
        value = self._counters.get(key)
        if value is None:
            raw = self.txn.get(key, db=self.dbs.meta)
            value = U64.unpack(raw)[0] if raw else 0
        value += 1
        self._counters[key] = value
        return value

    def flush(self) -> None:
        """Write back what the operation cached; the writer wrapper calls it after every operation."""
        for key, value in self._counters.items():
            self.txn.put(key, U64.pack(value), db=self.dbs.meta)
        last_event = self._counters.get(MetaKey.LAST_EVENT_ID)
        if last_event is not None:
            # Every status change appends an event: the rollout index is in step up to this one.
            self.txn.put(MetaKey.ROLLOUT_INDEX_EVENT, U64.pack(last_event), db=self.dbs.meta)
        self._counters.clear()
        rollout_index.apply_counts(self.txn, self.dbs, self._index_counts)

    # --- rollouts ----------------------------------------------------------------------------------

    def find_rollout(self, rollout_id: str) -> RolloutRecord | None:
        raw = self.txn.get(rollout_id.encode(), db=self.dbs.rollouts)
        if raw is None:
            return None
        num, queue_seq, attempts = ROLLOUT_HEADER.unpack_from(raw)
        return RolloutRecord(num, queue_seq, attempts, t.Rollout.FromString(raw[ROLLOUT_HEADER.size :]))

    def rollout(self, rollout_id: str) -> RolloutRecord:
        record = self.find_rollout(rollout_id)
        if record is None:
            raise NotFoundError(f"rollout {rollout_id!r} not found")
        return record

    def rollout_by_num(self, num: int) -> RolloutRecord | None:
        rollout_id = self.txn.get(U64.pack(num), db=self.dbs.rollout_nums)
        return self.find_rollout(rollout_id.decode()) if rollout_id is not None else None

    def put_rollout(self, record: RolloutRecord) -> None:
        header = ROLLOUT_HEADER.pack(record.num, record.queue_seq, record.attempts)
        self.txn.put(record.pb.rollout_id.encode(), header + record.pb.SerializeToString(), db=self.dbs.rollouts)

    def insert_rollout(self, pb: t.Rollout, input_bytes: bytes) -> RolloutRecord:
        """Store a new rollout (its status already set in ``pb``) and index it.

        The caller appends the creation event once the rollout is complete (with its first attempt
        when it starts at once), so the event log holds the rollout as clients first saw it.
        """
        num = self.next_meta(MetaKey.NEXT_ROLLOUT_NUM)
        record = RolloutRecord(num, 0, 0, pb)
        if pb.namespace and pb.namespace != routing.DEFAULT_NAMESPACE:
            # From now on the rollout index (which knows no namespaces) no longer answers a query of
            # the default namespace alone; see LifecycleMixin.query_rollouts.
            self.txn.put(MetaKey.NAMESPACED, b"1", db=self.dbs.meta)
        key = pb.rollout_id.encode()
        self.txn.put(key, input_bytes, db=self.dbs.rollout_inputs)
        self.txn.put(U64.pack(num), key, db=self.dbs.rollout_nums)
        self.txn.put(STATUS_KEY.pack(pb.status, num), b"", db=self.dbs.status_index)
        rollout_index.add(self.txn, self.dbs, self._index_counts, pb.status, pb.mode, num)
        if pb.status in rules.QUEUED_ROLLOUT:
            self._push_queue(record)
        self.put_rollout(record)
        return record

    def remove_rollout(self, record: RolloutRecord) -> None:
        """Remove the rollout's own records and index entries (not its attempts, spans or events)."""
        key = record.pb.rollout_id.encode()
        self.txn.delete(key, db=self.dbs.rollouts)
        self.txn.delete(key, db=self.dbs.rollout_inputs)
        self.txn.delete(U64.pack(record.num), db=self.dbs.rollout_nums)
        self.txn.delete(STATUS_KEY.pack(record.pb.status, record.num), db=self.dbs.status_index)
        rollout_index.remove(self.txn, self.dbs, self._index_counts, record.pb.status, record.pb.mode, record.num)
        if record.queue_seq:
            self.txn.delete(U64.pack(record.queue_seq), db=self.dbs.queue)

    def set_rollout_mode(self, record: RolloutRecord, mode: int) -> None:
        """Change a rollout's mode and its place in the rollout index (the caller saves the record)."""
        if record.pb.mode == mode:
            return
        rollout_index.remove(self.txn, self.dbs, self._index_counts, record.pb.status, record.pb.mode, record.num)
        rollout_index.add(self.txn, self.dbs, self._index_counts, record.pb.status, mode, record.num)
        record.pb.mode = mode

    def input_bytes(self, rollout_id: str) -> bytes:
        return self.txn.get(rollout_id.encode(), db=self.dbs.rollout_inputs) or b""

    def full_rollout(self, record: RolloutRecord, with_input: bool = True) -> t.Rollout:
        """The rollout as clients see it: with its input and latest attempt."""
        out = t.Rollout()
        out.CopyFrom(record.pb)
        fill_routing(out)
        if with_input:
            out.input.ParseFromString(self.input_bytes(record.pb.rollout_id))
        latest = self.latest_attempt(record)
        if latest is not None:
            out.attempt.CopyFrom(latest)
        return out

    def _push_queue(self, record: RolloutRecord) -> None:
        record.queue_seq = self.next_meta(MetaKey.NEXT_QUEUE_SEQ)
        self.txn.put(U64.pack(record.queue_seq), record.pb.rollout_id.encode(), db=self.dbs.queue)
        if self.effects is not None:
            self.effects.enqueued += 1
            pb = record.pb
            self.effects.queued.append(
                (
                    routing.namespace(pb.namespace),
                    routing.queue(pb.queue),
                    dict(pb.labels),
                    pb.priority,
                    record.queue_seq,
                    pb.rollout_id,
                )
            )

    def set_rollout_status(self, record: RolloutRecord, status: int, latest: t.Attempt | None) -> None:
        """Move a rollout to ``status``: indexes, queue, end time, event log. Saves the record."""
        old = record.pb.status
        if old == status:
            return
        self.txn.delete(STATUS_KEY.pack(old, record.num), db=self.dbs.status_index)
        self.txn.put(STATUS_KEY.pack(status, record.num), b"", db=self.dbs.status_index)
        rollout_index.remove(self.txn, self.dbs, self._index_counts, old, record.pb.mode, record.num)
        rollout_index.add(self.txn, self.dbs, self._index_counts, status, record.pb.mode, record.num)
        record.pb.status = status
        if status in rules.TERMINAL_ROLLOUT:
            record.pb.end_time.FromNanoseconds(self.now_ns)
        elif record.pb.HasField("end_time"):
            record.pb.ClearField("end_time")
        if status in rules.QUEUED_ROLLOUT:
            if record.queue_seq == 0:
                self._push_queue(record)
        else:
            # The dispatch index skips (and drops) an entry left behind when a dequeue reaches it.
            if record.queue_seq:
                self.txn.delete(U64.pack(record.queue_seq), db=self.dbs.queue)
            record.queue_seq = 0
        self.put_rollout(record)
        self.append_event(record, old, status, latest)

    def append_event(self, record: RolloutRecord, old: int, new: int, latest: t.Attempt | None) -> None:
        if self.effects is None:
            raise RuntimeError("append_event needs a write transaction")
        event_id = self.next_meta(MetaKey.LAST_EVENT_ID)
        event = t.RolloutEvent(event_id=event_id, rollout_id=record.pb.rollout_id, old_status=old, new_status=new)
        event.time.FromNanoseconds(self.now_ns)
        event.rollout.CopyFrom(record.pb)
        fill_routing(event.rollout)
        if latest is not None:
            event.rollout.attempt.CopyFrom(latest)
        elif record.attempts:
            event.rollout.attempt.CopyFrom(self.attempt(record.num, record.attempts))
        self.txn.put(U64.pack(event_id), event.SerializeToString(), db=self.dbs.events)
        # Lets a deletion find the rollout's events without scanning the log (deletion.py).
        self.txn.put(EVENT_OF_ROLLOUT.pack(record.num, event_id), b"", db=self.dbs.rollout_events)
        self.effects.events.append(event)

    # --- attempts ----------------------------------------------------------------------------------

    def attempt(self, num: int, seq: int) -> t.Attempt:
        raw = self.txn.get(attempt_key(num, seq), db=self.dbs.attempts)
        if raw is None:
            raise NotFoundError(f"attempt {seq} of rollout number {num} is missing from the store")
        return t.Attempt.FromString(raw)

    def latest_attempt(self, record: RolloutRecord) -> t.Attempt | None:
        return self.attempt(record.num, record.attempts) if record.attempts else None

    def find_attempt(self, record: RolloutRecord, attempt_id: str) -> t.Attempt:
        """The attempt ``attempt_id`` (or "latest") of ``record``."""
        if attempt_id == "latest":
            latest = self.latest_attempt(record)
            if latest is None:
                raise NotFoundError(f"rollout {record.pb.rollout_id!r} has no attempt yet")
            return latest
        raw = self.txn.get(attempt_id.encode(), db=self.dbs.attempt_ids)
        if raw is None:
            raise NotFoundError(f"attempt {attempt_id!r} not found")
        num, seq = raw[:8], raw[8:]
        if U64.unpack(num)[0] != record.num:
            raise NotFoundError(f"attempt {attempt_id!r} is not an attempt of rollout {record.pb.rollout_id!r}")
        return self.attempt(record.num, int.from_bytes(seq, "big"))

    def put_attempt(self, num: int, attempt: t.Attempt) -> None:
        self.txn.put(attempt_key(num, attempt.sequence_id), attempt.SerializeToString(), db=self.dbs.attempts)

    def new_attempt(
        self, record: RolloutRecord, worker_id: str, dequeued: bool = False, running: bool = False
    ) -> t.Attempt:
        """Create the next attempt of ``record`` (PREPARING) and move the rollout to PREPARING;
        ``running``: both RUNNING at once, for a worker that starts the attempt when it gets it."""
        record.attempts += 1
        attempt = t.Attempt(
            rollout_id=record.pb.rollout_id,
            attempt_id=new_id("at"),
            sequence_id=record.attempts,
            status=t.ATTEMPT_STATUS_RUNNING if running else t.ATTEMPT_STATUS_PREPARING,
            worker_id=worker_id,
        )
        attempt.start_time.FromNanoseconds(self.now_ns)
        if self.effects is not None:
            self.effects.attempts_started += 1
        self.put_attempt(record.num, attempt)
        self.txn.put(attempt.attempt_id.encode(), attempt_key(record.num, record.attempts), db=self.dbs.attempt_ids)
        self.put_rollout(record)  # the attempt count changed even if the status does not
        self.set_rollout_status(record, t.ROLLOUT_STATUS_RUNNING if running else t.ROLLOUT_STATUS_PREPARING, attempt)
        self.sync_worker(attempt, dequeued=dequeued)
        self.watch(record, attempt)
        return attempt

    def set_attempt_status(self, record: RolloutRecord, attempt: t.Attempt, status: int) -> None:
        """Move an attempt to ``status`` and propagate it to the rollout if it is the latest."""
        if attempt.status == status:
            return
        attempt.status = status
        if status in rules.TERMINAL_ATTEMPT:
            attempt.end_time.FromNanoseconds(self.now_ns)
        self.put_attempt(record.num, attempt)
        self.sync_worker(attempt)
        if attempt.sequence_id == record.attempts and record.pb.status not in rules.TERMINAL_ROLLOUT:
            new_status = rules.rollout_status_for_attempt(status, attempt.sequence_id, record.pb.config)
            self.set_rollout_status(record, new_status, attempt)
        if status in rules.ACTIVE_ATTEMPT:
            self.watch(record, attempt)

    def heartbeat(self, record: RolloutRecord, attempt: t.Attempt) -> None:
        """A span (or explicit heartbeat) arrived for ``attempt``."""
        attempt.last_heartbeat_time.FromNanoseconds(self.now_ns)
        is_latest = attempt.sequence_id == record.attempts
        if is_latest and attempt.status in (t.ATTEMPT_STATUS_PREPARING, t.ATTEMPT_STATUS_UNRESPONSIVE):
            self.set_attempt_status(record, attempt, t.ATTEMPT_STATUS_RUNNING)
        else:
            # A stale attempt's span is kept but changes no status.
            self.put_attempt(record.num, attempt)

    def watch(self, record: RolloutRecord, attempt: t.Attempt) -> None:
        """Ask the watchdog to look at ``attempt`` when its first deadline passes."""
        deadline = attempt_deadline(record.pb.config, attempt)
        if deadline is not None and self.effects is not None:
            self.effects.watch.append((deadline, record.num, attempt.sequence_id))

    # --- workers -----------------------------------------------------------------------------------

    def find_worker(self, worker_id: str) -> t.Worker | None:
        raw = self.txn.get(worker_id.encode(), db=self.dbs.workers)
        return t.Worker.FromString(raw) if raw is not None else None

    def put_worker(self, worker: t.Worker) -> None:
        self.txn.put(worker.worker_id.encode(), worker.SerializeToString(), db=self.dbs.workers)

    def sync_worker(self, attempt: t.Attempt, dequeued: bool = False) -> None:
        """Keep the record of the attempt's worker in step with the attempt."""
        if not attempt.worker_id:
            return
        worker = self.find_worker(attempt.worker_id) or t.Worker(worker_id=attempt.worker_id)
        mine = worker.current_attempt_id in ("", attempt.attempt_id)
        if attempt.status in (t.ATTEMPT_STATUS_SUCCEEDED, t.ATTEMPT_STATUS_FAILED):
            if not mine:
                return
            worker.status = t.WORKER_STATUS_IDLE
            worker.last_idle_time.FromNanoseconds(self.now_ns)
            worker.current_rollout_id = worker.current_attempt_id = ""
        elif attempt.status in (t.ATTEMPT_STATUS_TIMEOUT, t.ATTEMPT_STATUS_UNRESPONSIVE):
            if not mine:
                return
            worker.status = t.WORKER_STATUS_UNKNOWN
            worker.current_rollout_id = worker.current_attempt_id = ""
        else:
            worker.status = t.WORKER_STATUS_BUSY
            worker.last_busy_time.FromNanoseconds(self.now_ns)
            worker.current_rollout_id = attempt.rollout_id
            worker.current_attempt_id = attempt.attempt_id
        if dequeued:
            worker.last_dequeue_time.FromNanoseconds(self.now_ns)
        self.put_worker(worker)


def timestamp_seconds(ts: timestamp_pb2.Timestamp) -> float:
    """Seconds since the epoch of ``ts``. Unlike ``ToNanoseconds`` it never raises: a stored
    timestamp outside the range protobuf accepts must not stop the watchdog."""
    return ts.seconds + ts.nanos / 1e9


def attempt_deadline(config: t.RolloutConfig, attempt: t.Attempt) -> float | None:
    """The first moment the watchdog must look at an active attempt, or None if it never must."""
    if attempt.status not in rules.ACTIVE_ATTEMPT:
        return None
    deadlines = []
    start = timestamp_seconds(attempt.start_time)
    if config.HasField("timeout_seconds"):
        deadlines.append(start + config.timeout_seconds)
    if config.HasField("unresponsive_seconds"):
        last = timestamp_seconds(attempt.last_heartbeat_time) if attempt.HasField("last_heartbeat_time") else start
        deadlines.append(last + config.unresponsive_seconds)
    return min(deadlines) if deadlines else None


def expired_status(config: t.RolloutConfig, attempt: t.Attempt, now: float) -> int | None:
    """TIMEOUT or UNRESPONSIVE if a deadline of ``attempt`` has passed at ``now``, else None."""
    start = timestamp_seconds(attempt.start_time)
    if config.HasField("timeout_seconds") and now >= start + config.timeout_seconds:
        return t.ATTEMPT_STATUS_TIMEOUT
    if config.HasField("unresponsive_seconds"):
        last = timestamp_seconds(attempt.last_heartbeat_time) if attempt.HasField("last_heartbeat_time") else start
        if now >= last + config.unresponsive_seconds:
            return t.ATTEMPT_STATUS_UNRESPONSIVE
    return None


def fill_routing(rollout: t.Rollout) -> None:
    """Rollouts stored before namespaces and queues existed belong to the defaults."""
    if not rollout.namespace:
        rollout.namespace = routing.DEFAULT_NAMESPACE
    if not rollout.queue:
        rollout.queue = routing.DEFAULT_QUEUE
