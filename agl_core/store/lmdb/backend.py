"""The LMDB store backend: every store call, on protobuf messages, over one LMDB environment.

Writes are operations queued to the single :class:`Writer` (group commit, answered after the
commit); reads run directly on the event loop in short read transactions (LMDB readers never
block and never wait for the writer). Waiting calls (dequeue with a wait, wait-for-rollouts,
watch) sleep on events that commits fire, never poll.

The backend binds to the event loop it is first used on. Use :class:`agl_core.store.SyncStore`
(or one agl-server) to reach it from other threads or processes.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import lmdb

from agl_core.errors import (
    AglError,
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    code_number,
)
from agl_core.proto import resources_pb2 as r
from agl_core.proto import store_pb2 as s
from agl_core.proto import trace_pb2
from agl_core.proto import types_pb2 as t
from agl_core.store import rules, validation
from agl_core.store.lmdb.records import Effects, RolloutRecord, Tx, attempt_deadline, expired_status, new_id
from agl_core.store.lmdb.resident import ResidentTrimmer
from agl_core.store.lmdb.schema import (
    STATUS_KEY,
    U64,
    MetaKey,
    attempt_key,
    next_counter,
    open_environment,
    read_counter,
    span_key,
)
from agl_core.store.lmdb.span_ids import SpanIdIndex
from agl_core.store.lmdb.watchdog import Watchdog
from agl_core.store.lmdb.writer import Writer
from agl_core.store.rules import rollout_status_name
from agl_core.store.wire import SpanHeader, with_sequence_id
from agl_core.types.values import check_value

logger = logging.getLogger(__name__)

DEFAULT_MAP_SIZE = 1 << 30
DEFAULT_RESIDENT_BUDGET = 256 << 20
RESIDENT_CHECK_SECONDS = 0.5
SPANS_PER_CHUNK = 256
SPAN_BYTES_PER_CHUNK = 1 << 20
EVENTS_PER_CHUNK = 256

Listener = Callable[[list[Effects]], None]
_WRONG_LOOP = (
    "this LmdbStore is bound to the event loop it was first used on; from other threads or event loops use "
    "agl_core.SyncStore(store) (blocking calls) or agl_core.ThreadSafeStore(store) (coroutines)"
)


def default_data_dir() -> str:
    return os.environ.get("AGL_DATA_DIR", "./.agl-data")


class LmdbBackend:
    """The store on LMDB. ``LmdbBackend(path)`` opens (or creates) the data directory at once.

    :param path: the data directory.
    :param map_size: initial LMDB map size in bytes; the map doubles whenever it fills up.
    :param sync: fsync every commit (the default). ``False`` keeps data across a crash of the
        process but not of the machine.
    :param resident_budget: bytes of the data file the process may keep mapped before it releases
        them (see ``resident.py``); 0 never releases.
    """

    name = "lmdb"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        sync: bool = True,
        resident_budget: int = DEFAULT_RESIDENT_BUDGET,
    ):
        self.path = os.fspath(path) if path is not None else default_data_dir()
        self.env, self.dbs = open_environment(self.path, map_size=map_size, sync=sync)
        self.sync = sync
        self.resident = ResidentTrimmer(os.path.join(self.path, "data.mdb"), resident_budget)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: Writer[Effects] | None = None
        self._watchdog: Watchdog | None = None
        self._queue_changed = asyncio.Event()
        self._events_changed = asyncio.Event()
        self._terminal_waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._listeners: list[Listener] = []
        # Used only by the writer thread.
        self._span_ids = SpanIdIndex()
        self._closed = False
        self.start_time = time.time()

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def _ensure_started(self) -> Writer[Effects]:
        if self._closed:
            raise FailedPreconditionError(f"the store at {self.path!r} is closed")
        loop = asyncio.get_running_loop()
        if self._writer is not None:
            if loop is not self._loop:
                raise RuntimeError(_WRONG_LOOP)
            return self._writer
        self._loop = loop
        # Events made before the loop existed are rebound to it lazily by asyncio; replace them anyway
        # so no waiter from an earlier loop lingers.
        self._queue_changed = asyncio.Event()
        self._events_changed = asyncio.Event()
        self._writer = Writer(self.env, loop, Effects, self._on_commit, on_abort=self._span_ids.discard_pending)
        self._watchdog = Watchdog(loop, self._expire)
        self._rearm_watchdog()
        if self.resident.active:
            loop.call_later(RESIDENT_CHECK_SECONDS, self._trim_resident)
        return self._writer

    def _trim_resident(self) -> None:
        if self._closed or self._loop is None:
            return
        self.resident.maybe_trim()
        self._loop.call_later(RESIDENT_CHECK_SECONDS, self._trim_resident)

    async def start(self) -> None:
        """Bind to the running loop and start the writer and watchdog (done lazily otherwise)."""
        self._ensure_started()

    async def close(self) -> None:
        """Finish queued writes, wake every waiter and close the environment."""
        if self._closed:
            return
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.close()
        if self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._writer.close)
            # Let the final group's results reach their callers before the environment goes away.
            await asyncio.sleep(0)
        for waiters in self._terminal_waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        self._queue_changed.set()
        self._events_changed.set()
        self.env.close()

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` on the event loop with the effects of every commit (events, span counts)."""
        self._listeners.append(listener)

    def _write(self, op: Callable[[Tx], Any]) -> asyncio.Future[Any]:
        writer = self._ensure_started()

        def run(txn: lmdb.Transaction, effects: Effects) -> Any:
            tx = Tx(txn, self.dbs, effects, time.time_ns())
            result = op(tx)
            tx.flush()
            return result

        return writer.submit(run)

    def _begin(self) -> lmdb.Transaction:
        """A read transaction. Use it in a ``with`` block that holds no ``await``: reads never span a
        suspension, which is what lets the writer grow the map from the loop thread."""
        if self._closed:
            raise FailedPreconditionError(f"the store at {self.path!r} is closed")
        if self._loop is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not self._loop:
                raise RuntimeError(_WRONG_LOOP)
        return self.env.begin()

    def _on_commit(self, effects: list[Effects]) -> None:
        enqueued = False
        events = False
        for effect in effects:
            enqueued = enqueued or effect.enqueued > 0
            if effect.events:
                events = True
                for event in effect.events:
                    if event.new_status in rules.TERMINAL_ROLLOUT:
                        for waiter in self._terminal_waiters.pop(event.rollout_id, ()):
                            if not waiter.done():
                                waiter.set_result(None)
            if self._watchdog is not None:
                for deadline, num, seq in effect.watch:
                    self._watchdog.arm(deadline, num, seq)
        if enqueued:
            self._queue_changed.set()
            self._queue_changed = asyncio.Event()
        if events:
            self._events_changed.set()
            self._events_changed = asyncio.Event()
        for listener in self._listeners:
            try:
                listener(effects)
            except Exception:
                logger.exception("a store listener failed")

    # --- watchdog ----------------------------------------------------------------------------------

    def _rearm_watchdog(self) -> None:
        """After a restart, re-arm the deadlines of every active attempt found on disk."""
        assert self._watchdog is not None
        armed = 0
        with self._begin() as txn:
            tx = Tx(txn, self.dbs)
            for status in (t.ROLLOUT_STATUS_PREPARING, t.ROLLOUT_STATUS_RUNNING):
                for num in _status_nums(txn, self.dbs, status):
                    record = tx.rollout_by_num(num)
                    latest = tx.latest_attempt(record) if record else None
                    if record is None or latest is None:
                        continue
                    deadline = attempt_deadline(record.pb.config, latest)
                    if deadline is not None:
                        self._watchdog.arm(deadline, num, latest.sequence_id)
                        armed += 1
        if armed:
            logger.info("watchdog re-armed %d active attempts", armed)

    def _expire(self, due: list[tuple[int, int]]) -> None:
        def op(tx: Tx) -> None:
            for num, seq in due:
                record = tx.rollout_by_num(num)
                if record is None or seq != record.attempts or record.pb.status in rules.TERMINAL_ROLLOUT:
                    continue
                attempt = tx.attempt(num, seq)
                if attempt.status not in rules.ACTIVE_ATTEMPT:
                    continue
                status = expired_status(record.pb.config, attempt, tx.now)
                if status is None:
                    tx.watch(record, attempt)  # a heartbeat moved the deadline: look again then
                else:
                    tx.set_attempt_status(record, attempt, status)

        if not self._closed:
            future = self._write(op)
            future.add_done_callback(_log_failure("watchdog"))

    # --- rollouts ----------------------------------------------------------------------------------

    def _create_rollout(
        self, tx: Tx, spec: s.RolloutSpec, start: bool, worker_id: str, echo_input: bool = True
    ) -> t.Rollout:
        input_bytes = spec.input.SerializeToString(deterministic=True)
        if spec.rollout_id:
            existing = tx.find_rollout(spec.rollout_id)
            if existing is not None:
                if tx.input_bytes(spec.rollout_id) != input_bytes:
                    raise AlreadyExistsError(
                        f"rollout {spec.rollout_id!r} already exists with a different input; choose another "
                        "rollout_id or leave it empty"
                    )
                return tx.full_rollout(existing, with_input=echo_input)  # a retry: answer as the first time
            rollout_id = spec.rollout_id
        else:
            rollout_id = new_id("ro")
            while tx.find_rollout(rollout_id) is not None:
                rollout_id = new_id("ro")
        pb = t.Rollout(
            rollout_id=rollout_id,
            mode=spec.mode,
            resources_id=spec.resources_id,
            status=t.ROLLOUT_STATUS_PREPARING if start else t.ROLLOUT_STATUS_QUEUING,
            metadata=spec.metadata,
        )
        pb.start_time.FromNanoseconds(tx.now_ns)
        pb.config.CopyFrom(spec.config)
        pb.config.max_attempts = rules.max_attempts(spec.config)
        record = tx.insert_rollout(pb, input_bytes)
        attempt = tx.new_attempt(record, worker_id) if start else None
        tx.append_event(record, t.ROLLOUT_STATUS_UNSPECIFIED, pb.status, attempt)
        full = t.Rollout()
        full.CopyFrom(record.pb)
        if echo_input:
            full.input.CopyFrom(spec.input)
        if attempt is not None:
            full.attempt.CopyFrom(attempt)
        return full

    async def start_rollout(self, request: s.StartRolloutRequest) -> s.StartRolloutResponse:
        validation.check_spec(request.rollout, "rollout")
        worker_id = validation.optional_id(request.worker_id, "worker_id")
        rollout = await self._write(lambda tx: self._create_rollout(tx, request.rollout, True, worker_id))
        return s.StartRolloutResponse(rollout=rollout)

    async def enqueue_rollouts(self, request: s.EnqueueRolloutsRequest) -> s.EnqueueRolloutsResponse:
        if not request.rollouts:
            raise InvalidArgumentError("rollouts is empty; send at least one rollout to enqueue")
        response = s.EnqueueRolloutsResponse()
        valid: list[tuple[int, s.RolloutSpec]] = []
        for i, spec in enumerate(request.rollouts):
            try:
                validation.check_spec(spec, f"rollouts[{i}]")
                valid.append((i, spec))
            except InvalidArgumentError as exc:
                response.errors.add(index=i, code=code_number(exc), message=str(exc))

        def op(tx: Tx) -> list[tuple[int, t.Rollout | AglError]]:
            out: list[tuple[int, t.Rollout | AglError]] = []
            for i, spec in valid:
                try:
                    out.append((i, self._create_rollout(tx, spec, False, "", echo_input=False)))
                except AlreadyExistsError as exc:
                    out.append((i, exc))
            return out

        results = dict(await self._write(op)) if valid else {}
        for i in range(len(request.rollouts)):
            item = results.get(i)
            if isinstance(item, t.Rollout):
                response.rollouts.append(item)
            else:
                response.rollouts.add()
                if isinstance(item, AglError):
                    response.errors.add(index=i, code=code_number(item), message=str(item))
        response.errors.sort(key=lambda e: e.index)
        return response

    async def dequeue_rollout(self, request: s.DequeueRolloutRequest) -> s.DequeueRolloutResponse:
        worker_id = validation.optional_id(request.worker_id, "worker_id")
        if request.limit < 0:
            raise InvalidArgumentError(f"limit is {request.limit}; it must be 0 (one) or positive")
        limit = min(request.limit or 1, validation.MAX_PAGE)
        wait = request.wait.ToNanoseconds() / 1e9 if request.HasField("wait") else 0.0
        if wait < 0:
            raise InvalidArgumentError("wait must not be negative")
        return await self.dequeue(worker_id, limit, wait)

    async def dequeue(self, worker_id: str, limit: int, wait: float) -> s.DequeueRolloutResponse:
        self._ensure_started()
        deadline = time.monotonic() + wait
        marked_idle = False
        while True:
            changed = self._queue_changed  # taken before looking, so a commit in between still wakes us
            if self._queue_entries() > 0:
                claim = self._write(lambda tx: self._dequeue_op(tx, worker_id, limit))
                try:
                    rollouts = await asyncio.shield(claim)
                except asyncio.CancelledError:
                    # The caller left while its claim was being committed: nobody will run those
                    # attempts, so hand the rollouts back to the queue once the claim lands.
                    claim.add_done_callback(self._release_abandoned)
                    raise
                if rollouts:
                    return s.DequeueRolloutResponse(rollouts=rollouts)
            if worker_id and not marked_idle:
                marked_idle = True
                if not self._is_idle(worker_id):
                    await self._write(lambda tx: self._mark_idle(tx, worker_id))
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed:
                return s.DequeueRolloutResponse()
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return s.DequeueRolloutResponse()

    def _queue_entries(self) -> int:
        with self._begin() as txn:
            return int(txn.stat(self.dbs.queue)["entries"])

    def _dequeue_op(self, tx: Tx, worker_id: str, limit: int) -> list[t.Rollout]:
        claimed: list[t.Rollout] = []
        cursor = tx.txn.cursor(db=self.dbs.queue)
        while len(claimed) < limit and cursor.first():
            key, rollout_id = cursor.item()
            cursor.delete()
            record = tx.find_rollout(rollout_id.decode())
            if record is None or record.queue_seq != U64.unpack(key)[0]:
                continue  # a stale entry: the rollout left the queue another way
            if record.pb.status not in rules.QUEUED_ROLLOUT:
                record.queue_seq = 0
                tx.put_rollout(record)
                continue
            record.queue_seq = 0
            tx.new_attempt(record, worker_id, dequeued=True)
            claimed.append(tx.full_rollout(record))
        return claimed

    def _release_abandoned(self, claim: asyncio.Future[list[t.Rollout]]) -> None:
        if claim.cancelled() or claim.exception() is not None or not claim.result():
            return
        self._write(lambda tx: self._release_op(tx, claim.result())).add_done_callback(_log_failure("release"))

    async def release_claims(self, rollouts: Sequence[t.Rollout]) -> None:
        """Undo claims whose answer never reached a worker (agl-server calls this when the caller of
        DequeueRollout went away): each attempt that is still untouched (PREPARING, no heartbeat) is
        dropped and its rollout goes back to the queue, so it is not stuck waiting for a worker that
        does not know it holds it."""
        if rollouts:
            await self._write(lambda tx: self._release_op(tx, list(rollouts)))

    def _release_op(self, tx: Tx, rollouts: list[t.Rollout]) -> int:
        released = 0
        for claimed in rollouts:
            record = tx.find_rollout(claimed.rollout_id)
            latest = tx.latest_attempt(record) if record is not None else None
            if (
                record is None
                or latest is None
                or latest.attempt_id != claimed.attempt.attempt_id
                or latest.status != t.ATTEMPT_STATUS_PREPARING
                or latest.HasField("last_heartbeat_time")
                or record.pb.status != t.ROLLOUT_STATUS_PREPARING
            ):
                continue  # someone acted on it after all; leave it alone
            tx.txn.delete(attempt_key(record.num, latest.sequence_id), db=self.dbs.attempts)
            tx.txn.delete(latest.attempt_id.encode(), db=self.dbs.attempt_ids)
            record.attempts -= 1
            tx.put_rollout(record)
            # Back to where it was: a first attempt waits as QUEUING, a retry as REQUEUING.
            tx.set_rollout_status(
                record, t.ROLLOUT_STATUS_REQUEUING if record.attempts else t.ROLLOUT_STATUS_QUEUING, None
            )
            if latest.worker_id:
                worker = tx.find_worker(latest.worker_id)
                if worker is not None and worker.current_attempt_id == latest.attempt_id:
                    worker.status = t.WORKER_STATUS_IDLE
                    worker.current_rollout_id = worker.current_attempt_id = ""
                    worker.last_idle_time.FromNanoseconds(tx.now_ns)
                    tx.put_worker(worker)
            released += 1
        if released:
            logger.info("released %d claimed rollouts whose worker went away before receiving them", released)
        return released

    def _is_idle(self, worker_id: str) -> bool:
        with self._begin() as txn:
            worker = Tx(txn, self.dbs).find_worker(worker_id)
        return worker is not None and worker.status == t.WORKER_STATUS_IDLE and not worker.current_attempt_id

    def _mark_idle(self, tx: Tx, worker_id: str) -> None:
        worker = tx.find_worker(worker_id) or t.Worker(worker_id=worker_id)
        if worker.current_attempt_id:
            record = tx.find_rollout(worker.current_rollout_id)
            try:
                current = tx.find_attempt(record, worker.current_attempt_id) if record else None
            except NotFoundError:
                current = None
            if current is not None and current.status in rules.ACTIVE_ATTEMPT:
                return  # still busy with an attempt; it is asking for more work
        worker.status = t.WORKER_STATUS_IDLE
        worker.current_rollout_id = worker.current_attempt_id = ""
        worker.last_idle_time.FromNanoseconds(tx.now_ns)
        worker.last_dequeue_time.FromNanoseconds(tx.now_ns)
        tx.put_worker(worker)

    async def start_attempt(self, request: s.StartAttemptRequest) -> s.StartAttemptResponse:
        rollout_id = validation.require_id(request.rollout_id, "rollout_id")
        worker_id = validation.optional_id(request.worker_id, "worker_id")

        def op(tx: Tx) -> t.Rollout:
            record = tx.rollout(rollout_id)
            if record.pb.status in (t.ROLLOUT_STATUS_SUCCEEDED, t.ROLLOUT_STATUS_CANCELLED):
                raise FailedPreconditionError(
                    f"rollout {rollout_id!r} is {rollout_status_name(record.pb.status)}; only a rollout that has not "
                    "succeeded or been cancelled can get a new attempt"
                )
            tx.new_attempt(record, worker_id)
            return tx.full_rollout(record)

        return s.StartAttemptResponse(rollout=await self._write(op))

    async def get_rollout(self, request: s.GetRolloutRequest) -> s.GetRolloutResponse:
        rollout_id = validation.require_id(request.rollout_id, "rollout_id")
        with self._begin() as txn:
            tx = Tx(txn, self.dbs)
            return s.GetRolloutResponse(rollout=tx.full_rollout(tx.rollout(rollout_id)))

    async def query_rollouts(self, request: s.QueryRolloutsRequest) -> s.QueryRolloutsResponse:
        limit, offset = validation.page(request.limit, request.offset)
        sort_by = validation.sort_field(request.sort_by, ("start_time", "end_time", "rollout_id", "status"))
        desc = validation.descending(request.order)
        statuses = set(request.status_in)
        for status in statuses:
            if status not in rules.ROLLOUT_STATUSES:
                raise InvalidArgumentError(f"status_in contains {status}, which is not a rollout status")
        with self._begin() as txn:
            tx = Tx(txn, self.dbs)
            records: Iterable[RolloutRecord]
            if request.rollout_id_in:
                found = (tx.find_rollout(i) for i in dict.fromkeys(request.rollout_id_in))
                records = sorted((rec for rec in found if rec is not None), key=lambda rec: rec.num)
            elif statuses:
                nums = heapq.merge(*(_status_nums(txn, self.dbs, st) for st in sorted(statuses)))
                records = (rec for rec in map(tx.rollout_by_num, nums) if rec is not None)
            else:
                records = _all_rollouts(txn, self.dbs, tx)
            selected = [
                rec
                for rec in records
                if (not statuses or rec.pb.status in statuses)
                and (not request.mode or rec.pb.mode == request.mode)
                and (not request.rollout_id_contains or request.rollout_id_contains in rec.pb.rollout_id)
            ]
            if sort_by == "start_time":
                selected.sort(key=lambda rec: rec.num, reverse=desc)
            elif sort_by == "end_time":
                missing = float("inf") if not desc else float("-inf")
                selected.sort(
                    key=lambda rec: rec.pb.end_time.ToNanoseconds() if rec.pb.HasField("end_time") else missing,
                    reverse=desc,
                )
            elif sort_by == "rollout_id":
                selected.sort(key=lambda rec: rec.pb.rollout_id, reverse=desc)
            else:
                selected.sort(key=lambda rec: (rec.pb.status, rec.num), reverse=desc)
            page = selected[offset : offset + limit]
            return s.QueryRolloutsResponse(rollouts=[tx.full_rollout(rec) for rec in page], total=len(selected))

    async def query_attempts(self, request: s.QueryAttemptsRequest) -> s.QueryAttemptsResponse:
        rollout_id = validation.require_id(request.rollout_id, "rollout_id")
        limit, offset = validation.page(request.limit, request.offset)
        desc = validation.descending(request.order)
        with self._begin() as txn:
            tx = Tx(txn, self.dbs)
            record = tx.rollout(rollout_id)
            seqs = list(range(1, record.attempts + 1))
            if desc:
                seqs.reverse()
            attempts = [tx.attempt(record.num, seq) for seq in seqs[offset : offset + limit]]
            return s.QueryAttemptsResponse(attempts=attempts, total=record.attempts)

    async def update_rollout(self, request: s.UpdateRolloutRequest) -> s.UpdateRolloutResponse:
        rollout_id = validation.require_id(request.rollout_id, "rollout_id")
        if request.HasField("input"):
            check_value(request.input, "input")
        if request.HasField("config"):
            rules.check_config(request.config)
        if request.HasField("mode") and request.mode not in rules.ROLLOUT_MODES:
            raise InvalidArgumentError(f"mode {request.mode} is not a RolloutMode")
        if request.HasField("status") and request.status not in rules.ROLLOUT_STATUSES:
            raise InvalidArgumentError(f"status {request.status} is not a rollout status")

        def op(tx: Tx) -> t.Rollout:
            record = tx.rollout(rollout_id)
            if request.HasField("status"):
                rules.check_rollout_transition(rollout_id, record.pb.status, request.status)
            if request.HasField("input"):
                tx.txn.put(
                    rollout_id.encode(), request.input.SerializeToString(deterministic=True), db=self.dbs.rollout_inputs
                )
            if request.HasField("mode"):
                record.pb.mode = request.mode
            if request.HasField("resources_id"):
                record.pb.resources_id = request.resources_id
            if request.HasField("config"):
                record.pb.config.CopyFrom(request.config)
                record.pb.config.max_attempts = rules.max_attempts(request.config)
            if request.HasField("metadata"):
                record.pb.metadata.CopyFrom(request.metadata)
            tx.put_rollout(record)
            if request.HasField("status"):
                tx.set_rollout_status(record, request.status, None)
            return tx.full_rollout(record)

        return s.UpdateRolloutResponse(rollout=await self._write(op))

    async def update_attempt(self, request: s.UpdateAttemptRequest) -> s.UpdateAttemptResponse:
        rollout_id = validation.require_id(request.rollout_id, "rollout_id")
        attempt_id = validation.require_id(request.attempt_id, "attempt_id")
        if request.HasField("status") and request.status not in rules.ATTEMPT_STATUSES:
            raise InvalidArgumentError(
                f"status {request.status} is not an attempt status; use preparing, running, failed, succeeded, "
                "unresponsive or timeout"
            )

        def op(tx: Tx) -> t.Attempt:
            record = tx.rollout(rollout_id)
            attempt = tx.find_attempt(record, attempt_id)
            if request.HasField("status"):
                rules.check_attempt_transition(rollout_id, attempt.attempt_id, attempt.status, request.status)
            if request.HasField("worker_id"):
                attempt.worker_id = request.worker_id
            if request.HasField("last_heartbeat_time"):
                attempt.last_heartbeat_time.CopyFrom(request.last_heartbeat_time)
            if request.HasField("metadata"):
                attempt.metadata.CopyFrom(request.metadata)
            tx.put_attempt(record.num, attempt)
            if request.HasField("status"):
                tx.set_attempt_status(record, attempt, request.status)
            elif request.HasField("worker_id"):
                tx.sync_worker(attempt)
            return attempt

        return s.UpdateAttemptResponse(attempt=await self._write(op))

    # --- resources ---------------------------------------------------------------------------------

    def _put_resources(self, tx: Tx, update: r.ResourcesUpdate) -> None:
        tx.txn.put(update.resources_id.encode(), update.SerializeToString(), db=self.dbs.resources)
        tx.txn.put(MetaKey.LATEST_RESOURCES, update.resources_id.encode(), db=self.dbs.meta)

    async def add_resources(self, request: s.AddResourcesRequest) -> s.AddResourcesResponse:
        validation.optional_id(request.resources_id, "resources_id")
        validation.check_resources(request.resources)

        def op(tx: Tx) -> r.ResourcesUpdate:
            resources_id = request.resources_id or new_id("rs")
            if tx.txn.get(resources_id.encode(), db=self.dbs.resources) is not None:
                raise AlreadyExistsError(
                    f"resources {resources_id!r} already exist; use UpdateResources to change them"
                )
            update = r.ResourcesUpdate(resources_id=resources_id, version=1)
            update.create_time.FromNanoseconds(tx.now_ns)
            update.update_time.FromNanoseconds(tx.now_ns)
            for name, resource in request.resources.items():
                update.resources[name].CopyFrom(resource)
            number = tx.next_meta(MetaKey.NEXT_RESOURCES_NUM)
            tx.txn.put(U64.pack(number), resources_id.encode(), db=self.dbs.resources_order)
            self._put_resources(tx, update)
            return update

        return s.AddResourcesResponse(resources=await self._write(op))

    async def update_resources(self, request: s.UpdateResourcesRequest) -> s.UpdateResourcesResponse:
        resources_id = validation.require_id(request.resources_id, "resources_id")
        validation.check_resources(request.resources)

        def op(tx: Tx) -> r.ResourcesUpdate:
            raw = tx.txn.get(resources_id.encode(), db=self.dbs.resources)
            if raw is None:
                # Updating a set that does not exist yet creates it: a fixed name like "main" can be
                # published to from the first step on.
                update = r.ResourcesUpdate(resources_id=resources_id, version=1)
                update.create_time.FromNanoseconds(tx.now_ns)
                number = tx.next_meta(MetaKey.NEXT_RESOURCES_NUM)
                tx.txn.put(U64.pack(number), resources_id.encode(), db=self.dbs.resources_order)
            else:
                update = r.ResourcesUpdate.FromString(raw)
                update.version += 1
                update.ClearField("resources")
            update.update_time.FromNanoseconds(tx.now_ns)
            for name, resource in request.resources.items():
                update.resources[name].CopyFrom(resource)
            self._put_resources(tx, update)
            return update

        return s.UpdateResourcesResponse(resources=await self._write(op))

    async def get_resources(self, request: s.GetResourcesRequest) -> s.GetResourcesResponse:
        with self._begin() as txn:
            resources_id = request.resources_id.encode()
            if not resources_id:
                resources_id = txn.get(MetaKey.LATEST_RESOURCES, db=self.dbs.meta) or b""
                if not resources_id:
                    raise NotFoundError("no resources have been added yet; add some with AddResources")
            raw = txn.get(resources_id, db=self.dbs.resources)
            if raw is None:
                raise NotFoundError(f"resources {request.resources_id!r} not found")
            return s.GetResourcesResponse(resources=r.ResourcesUpdate.FromString(raw))

    async def query_resources(self, request: s.QueryResourcesRequest) -> s.QueryResourcesResponse:
        limit, offset = validation.page(request.limit, request.offset)
        sort_by = validation.sort_field(request.sort_by, ("create_time", "update_time", "resources_id", "version"))
        desc = validation.descending(request.order)
        wanted = set(request.resources_id_in)
        with self._begin() as txn:
            items = []
            for number, resources_id in txn.cursor(db=self.dbs.resources_order):
                if wanted and resources_id.decode() not in wanted:
                    continue
                raw = txn.get(resources_id, db=self.dbs.resources)
                if raw is not None:
                    items.append((U64.unpack(number)[0], r.ResourcesUpdate.FromString(raw)))
        keys: dict[str, Callable[[tuple[int, r.ResourcesUpdate]], Any]] = {
            "create_time": lambda item: item[0],
            "update_time": lambda item: (item[1].update_time.ToNanoseconds(), item[0]),
            "resources_id": lambda item: item[1].resources_id,
            "version": lambda item: (item[1].version, item[0]),
        }
        items.sort(key=keys[sort_by], reverse=desc)
        return s.QueryResourcesResponse(
            resources=[update for _, update in items[offset : offset + limit]], total=len(items)
        )

    # --- spans -------------------------------------------------------------------------------------

    async def ingest_spans(self, spans: Sequence[trace_pb2.Span]) -> s.IngestSpansResponse:
        """Store a batch of spans; answers once they are durable. Never raises for a bad span:
        each one that cannot be placed is reported in ``rejected``."""
        return await self.ingest_span_bytes([span.SerializeToString() for span in spans])

    async def ingest_span_bytes(self, raws: Sequence[bytes]) -> s.IngestSpansResponse:
        """:meth:`ingest_spans` for serialized spans: each is stored as received (see ``wire``)."""
        response = s.IngestSpansResponse()
        valid: list[tuple[int, Any, bytes]] = []
        parse = SpanHeader.FromString
        well_formed = validation.span_ids_well_formed
        for i, raw in enumerate(raws):
            try:
                header = parse(raw)
            except Exception as exc:
                message = f"spans[{i}] could not be decoded as agl.v1.Span ({exc})"
                response.rejected.add(index=i, code=3, message=message)
                continue
            if not well_formed(header):
                try:
                    validation.check_span(header, f"spans[{i}]")
                except InvalidArgumentError as exc:
                    response.rejected.add(index=i, code=3, message=str(exc))
                    continue
            valid.append((i, header, raw))
        if valid:
            accepted, duplicates, rejected = await self._write(lambda tx: self._ingest_op(tx, valid))
            response.accepted = accepted
            response.duplicate_indices.extend(duplicates)
            for i, code, message in rejected:
                response.rejected.add(index=i, code=code, message=message)
            response.rejected.sort(key=lambda e: e.index)
        return response

    def _ingest_op(
        self, tx: Tx, spans: list[tuple[int, Any, bytes]]
    ) -> tuple[int, list[int], list[tuple[int, int, str]]]:
        dbs = self.dbs
        txn = tx.txn
        accepted = 0
        duplicates: list[int] = []
        rejected: list[tuple[int, int, str]] = []
        targets: dict[tuple[str, str], tuple[RolloutRecord, t.Attempt] | str] = {}
        counters: dict[int, int] = {}
        touched: dict[tuple[str, str], tuple[RolloutRecord, t.Attempt]] = {}
        for i, header, raw in spans:
            coords = (header.rollout_id, header.attempt_id)
            target = targets.get(coords)
            if target is None:
                record = tx.find_rollout(header.rollout_id)
                if record is None:
                    target = f"rollout {header.rollout_id!r} not found"
                else:
                    try:
                        target = (record, tx.find_attempt(record, header.attempt_id))
                    except NotFoundError as exc:
                        target = str(exc)
                targets[coords] = target
            if isinstance(target, str):
                rejected.append((i, 5, f"spans[{i}]: {target}"))
                continue
            record, attempt = target
            num, seq = record.num, attempt.sequence_id
            span_id = header.span_id
            if not self._span_ids.add_if_new(txn, dbs.span_id_log, num, seq, span_id):
                duplicates.append(i)
                continue
            last = counters.get(num)
            if last is None:
                last = read_counter(txn, dbs.span_seqs, U64.pack(num))
            sequence_id = header.sequence_id
            if sequence_id == 0:
                last += 1
                sequence_id = last
                raw = with_sequence_id(raw, sequence_id)
            elif sequence_id > last:
                last = sequence_id
            counters[num] = last
            txn.put(span_key(num, seq, sequence_id, span_id), raw, db=dbs.spans)
            touched[coords] = target
            accepted += 1
        self._span_ids.flush(txn, dbs.span_id_log)
        for num, last in counters.items():
            txn.put(U64.pack(num), U64.pack(last), db=dbs.span_seqs)
        for record, attempt in touched.values():
            tx.heartbeat(record, attempt)
        tx.effects.spans += accepted  # type: ignore[union-attr]
        return accepted, duplicates, rejected

    async def query_spans(self, request: s.QuerySpansRequest) -> AsyncIterator[s.QuerySpansResponse]:
        """Stream the spans of a rollout in chunks; each chunk is read in its own short transaction."""
        async for chunk in self.query_span_bytes(request):
            response = s.QuerySpansResponse()
            response.spans.extend(trace_pb2.Span.FromString(raw) for raw in chunk)
            yield response

    async def query_span_bytes(self, request: s.QuerySpansRequest) -> AsyncIterator[list[bytes]]:
        """Like :meth:`query_spans`, but yields the stored bytes of each span, unparsed."""
        rollout_id = validation.require_id(request.rollout_id, "rollout_id")
        if request.limit < 0 or request.after_sequence_id < 0:
            raise InvalidArgumentError("limit and after_sequence_id must not be negative")
        with self._begin() as txn:
            tx = Tx(txn, self.dbs)
            record = tx.rollout(rollout_id)
            if request.attempt_id:
                prefix = U64.pack(record.num) + tx.find_attempt(record, request.attempt_id).sequence_id.to_bytes(
                    4, "big"
                )
            else:
                prefix = U64.pack(record.num)
        after = request.after_sequence_id
        remaining = request.limit or None
        position = prefix
        while remaining is None or remaining > 0:
            chunk: list[bytes] = []
            size = 0
            with self._begin() as txn:
                cursor = txn.cursor(db=self.dbs.spans)
                found = cursor.set_range(position)
                while found:
                    key = cursor.key()
                    if not key.startswith(prefix):
                        found = False
                        break
                    position = key + b"\x00"
                    if after and int.from_bytes(key[12:20], "big") <= after:
                        found = cursor.next()
                        continue
                    value = cursor.value()
                    chunk.append(value)
                    size += len(value)
                    if (
                        len(chunk) >= SPANS_PER_CHUNK
                        or size >= SPAN_BYTES_PER_CHUNK
                        or (remaining is not None and len(chunk) >= remaining)
                    ):
                        break
                    found = cursor.next()
            if chunk:
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
            if not found:
                return
            await asyncio.sleep(0)  # let other calls run between chunks of a long query

    async def next_sequence_ids(self, request: s.NextSequenceIdsRequest) -> s.NextSequenceIdsResponse:
        rollout_id = validation.require_id(request.rollout_id, "rollout_id")
        if request.count < 0 or request.count > 1_000_000:
            raise InvalidArgumentError(f"count is {request.count}; reserve between 1 and 1000000 ids at once")
        count = request.count or 1

        def op(tx: Tx) -> s.NextSequenceIdsResponse:
            record = tx.rollout(rollout_id)
            first = next_counter(tx.txn, self.dbs.span_seqs, U64.pack(record.num), count)
            return s.NextSequenceIdsResponse(first=first, count=count)

        return await self._write(op)

    # --- waiting -----------------------------------------------------------------------------------

    async def wait_for_rollouts(self, request: s.WaitForRolloutsRequest) -> s.WaitForRolloutsResponse:
        self._ensure_started()
        ids = list(dict.fromkeys(request.rollout_ids))
        for rollout_id in ids:
            validation.require_id(rollout_id, "rollout_ids[]")
        timeout = request.timeout.ToNanoseconds() / 1e9 if request.HasField("timeout") else None
        if timeout is not None and timeout < 0:
            raise InvalidArgumentError("timeout must not be negative")
        deadline = None if timeout is None else time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        while True:
            done, pending = self._terminal_split(ids)
            remaining = None if deadline is None else deadline - time.monotonic()
            if not pending or (remaining is not None and remaining <= 0) or self._closed:
                return s.WaitForRolloutsResponse(rollouts=done, pending_rollout_ids=pending)
            # Reading and registering happen with no await in between, so no commit slips through.
            waiters = []
            for rollout_id in pending:
                waiter = loop.create_future()
                self._terminal_waiters.setdefault(rollout_id, set()).add(waiter)
                waiters.append((rollout_id, waiter))
            try:
                await asyncio.wait([w for _, w in waiters], timeout=remaining)
            finally:
                for rollout_id, waiter in waiters:
                    registered = self._terminal_waiters.get(rollout_id)
                    if registered is not None:
                        registered.discard(waiter)
                        if not registered:
                            del self._terminal_waiters[rollout_id]

    def _terminal_split(self, ids: list[str]) -> tuple[list[t.Rollout], list[str]]:
        done: list[t.Rollout] = []
        pending: list[str] = []
        with self._begin() as txn:
            tx = Tx(txn, self.dbs)
            for rollout_id in ids:
                record = tx.rollout(rollout_id)
                if record.pb.status in rules.TERMINAL_ROLLOUT:
                    done.append(tx.full_rollout(record))
                else:
                    pending.append(rollout_id)
        return done, pending

    def last_event_id(self) -> int:
        with self._begin() as txn:
            return read_counter(txn, self.dbs.meta, MetaKey.LAST_EVENT_ID)

    async def watch_rollouts(self, request: s.WatchRolloutsRequest) -> AsyncIterator[s.WatchRolloutsResponse]:
        """Stream status changes from the event log; a slow watcher lags on disk, not in memory."""
        self._ensure_started()
        if request.HasField("after_event_id") and request.after_event_id < 0:
            raise InvalidArgumentError("after_event_id must not be negative")
        ids = set(request.rollout_ids)
        statuses = set(request.status_in)
        last = request.after_event_id if request.HasField("after_event_id") else self.last_event_id()
        yield s.WatchRolloutsResponse(last_event_id=last)
        while not self._closed:
            changed = self._events_changed
            events, scanned_to, full = self._read_events(last, ids, statuses)
            if events or scanned_to != last:
                last = scanned_to
                yield s.WatchRolloutsResponse(events=events, last_event_id=last)
            if full:
                await asyncio.sleep(0)
                continue
            await changed.wait()

    def _read_events(self, after: int, ids: set[str], statuses: set[int]) -> tuple[list[t.RolloutEvent], int, bool]:
        events: list[t.RolloutEvent] = []
        scanned = 0
        with self._begin() as txn:
            cursor = txn.cursor(db=self.dbs.events)
            if not cursor.set_range(U64.pack(after + 1)):
                return events, after, False
            for key, raw in cursor:
                after = U64.unpack(key)[0]
                scanned += 1
                event = t.RolloutEvent.FromString(raw)
                if (not ids or event.rollout_id in ids) and (not statuses or event.new_status in statuses):
                    stored_input = txn.get(event.rollout_id.encode(), db=self.dbs.rollout_inputs)
                    if stored_input:
                        event.rollout.input.ParseFromString(stored_input)
                    events.append(event)
                if scanned >= EVENTS_PER_CHUNK:
                    return events, after, True
        return events, after, False

    # --- workers -----------------------------------------------------------------------------------

    async def query_workers(self, request: s.QueryWorkersRequest) -> s.QueryWorkersResponse:
        limit, offset = validation.page(request.limit, request.offset)
        sort_by = validation.sort_field(request.sort_by, ("worker_id", "last_heartbeat_time", "status"))
        desc = validation.descending(request.order)
        statuses = set(request.status_in)
        wanted = set(request.worker_id_in)
        with self._begin() as txn:
            workers = [t.Worker.FromString(raw) for _, raw in txn.cursor(db=self.dbs.workers)]
        workers = [
            w for w in workers if (not statuses or w.status in statuses) and (not wanted or w.worker_id in wanted)
        ]
        keys: dict[str, Callable[[t.Worker], Any]] = {
            "worker_id": lambda w: w.worker_id,
            "last_heartbeat_time": lambda w: (w.last_heartbeat_time.ToNanoseconds(), w.worker_id),
            "status": lambda w: (w.status, w.worker_id),
        }
        workers.sort(key=keys[sort_by], reverse=desc)
        return s.QueryWorkersResponse(workers=workers[offset : offset + limit], total=len(workers))

    async def get_worker(self, request: s.GetWorkerRequest) -> s.GetWorkerResponse:
        worker_id = validation.require_id(request.worker_id, "worker_id")
        with self._begin() as txn:
            worker = Tx(txn, self.dbs).find_worker(worker_id)
        if worker is None:
            raise NotFoundError(f"worker {worker_id!r} not found")
        return s.GetWorkerResponse(worker=worker)

    async def update_worker(self, request: s.UpdateWorkerRequest) -> s.UpdateWorkerResponse:
        worker_id = validation.require_id(request.worker_id, "worker_id")
        if request.HasField("status") and (request.status not in t.WorkerStatus.values() or request.status == 0):
            raise InvalidArgumentError(f"status {request.status} is not a worker status; use idle, busy or unknown")

        def op(tx: Tx) -> t.Worker:
            worker = tx.find_worker(worker_id) or t.Worker(worker_id=worker_id, status=t.WORKER_STATUS_IDLE)
            worker.last_heartbeat_time.FromNanoseconds(tx.now_ns)
            if request.HasField("heartbeat_stats"):
                worker.heartbeat_stats.CopyFrom(request.heartbeat_stats)
            if request.HasField("status"):
                worker.status = request.status
            tx.put_worker(worker)
            return worker

        return s.UpdateWorkerResponse(worker=await self._write(op))

    # --- stats -------------------------------------------------------------------------------------

    async def get_stats(self, request: s.GetStatsRequest) -> s.GetStatsResponse:
        with self._begin() as txn:
            entries = {
                name: txn.stat(getattr(self.dbs, name))["entries"]
                for name in ("rollouts", "attempts", "spans", "resources", "workers")
            }
            by_status = {
                rollout_status_name(status): sum(1 for _ in _status_nums(txn, self.dbs, status))
                for status in sorted(rules.ROLLOUT_STATUSES)
            }
            last_event = read_counter(txn, self.dbs.meta, MetaKey.LAST_EVENT_ID)
        info = self.env.info()
        stat = self.env.stat()
        response = s.GetStatsResponse(
            rollouts_by_status=by_status,
            rollouts=entries["rollouts"],
            attempts=entries["attempts"],
            spans=entries["spans"],
            resources=entries["resources"],
            workers=entries["workers"],
            queue_length=by_status["queuing"] + by_status["requeuing"],
            data_bytes=(info["last_pgno"] + 1) * stat["psize"],
            map_size_bytes=info["map_size"],
            last_event_id=last_event,
            backend=self.name,
        )
        response.start_time.FromNanoseconds(int(self.start_time * 1e9))
        return response


def _status_nums(txn: lmdb.Transaction, dbs: Any, status: int) -> Iterable[int]:
    """Rollout numbers with ``status``, in creation order."""
    cursor = txn.cursor(db=dbs.status_index)
    prefix = bytes([status])
    if not cursor.set_range(prefix):
        return
    for key in cursor.iternext(values=False):
        if key[:1] != prefix:
            return
        yield STATUS_KEY.unpack(key)[1]


def _all_rollouts(txn: lmdb.Transaction, dbs: Any, tx: Tx) -> Iterable[RolloutRecord]:
    for _, rollout_id in txn.cursor(db=dbs.rollout_nums):
        record = tx.find_rollout(rollout_id.decode())
        if record is not None:
            yield record


def _log_failure(what: str) -> Callable[[asyncio.Future[Any]], None]:
    def callback(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.error("%s write failed: %s", what, future.exception())

    return callback
