"""Creating rollouts and the queue: start, enqueue, dequeue (long-poll), and handing back claims
that never reached a worker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from agl_core.errors import (
    AglError,
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    code_number,
)
from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_core.store import routing, rules, validation
from agl_core.store.lmdb.core import LmdbCore, log_failure
from agl_core.store.lmdb.records import Tx, new_id
from agl_core.store.lmdb.resources import latest_resources_id
from agl_core.store.lmdb.schema import U64, attempt_key

logger = logging.getLogger(__name__)

# Items of one EnqueueRollouts written per transaction (see enqueue_rollouts).
WRITE_CHUNK = 256


class QueueMixin(LmdbCore):
    """Rollout creation and the FIFO queue."""

    def _create_rollout(
        self, tx: Tx, spec: s.RolloutSpec, start: bool, worker_id: str, namespace: str, echo_input: bool = True
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
            # Pinned now (as the original did): the rollout says which version it ran with, however
            # many updates come before a worker takes it.
            resources_id=spec.resources_id or latest_resources_id(tx.txn, self.dbs, namespace),
            status=t.ROLLOUT_STATUS_PREPARING if start else t.ROLLOUT_STATUS_QUEUING,
            metadata=spec.metadata,
            namespace=namespace,
            queue=routing.queue(spec.queue),
            labels=spec.labels,
            priority=spec.priority,
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
        namespace = routing.namespace(request.namespace)
        rollout = await self._write(lambda tx: self._create_rollout(tx, request.rollout, True, worker_id, namespace))
        return s.StartRolloutResponse(rollout=rollout)

    async def enqueue_rollouts(self, request: s.EnqueueRolloutsRequest) -> s.EnqueueRolloutsResponse:
        if not request.rollouts:
            raise InvalidArgumentError("rollouts is empty; send at least one rollout to enqueue")
        namespace = routing.namespace(request.namespace)
        response = s.EnqueueRolloutsResponse()
        valid: list[tuple[int, s.RolloutSpec]] = []
        for i, spec in enumerate(request.rollouts):
            try:
                validation.check_spec(spec, f"rollouts[{i}]")
                valid.append((i, spec))
            except InvalidArgumentError as exc:
                response.errors.add(index=i, code=code_number(exc), message=str(exc))

        def op(tx: Tx, chunk: list[tuple[int, s.RolloutSpec]]) -> list[tuple[int, t.Rollout | AglError]]:
            out: list[tuple[int, t.Rollout | AglError]] = []
            for i, spec in chunk:
                try:
                    out.append((i, self._create_rollout(tx, spec, False, "", namespace, echo_input=False)))
                except AlreadyExistsError as exc:
                    out.append((i, exc))
            return out

        results: dict[int, t.Rollout | AglError] = {}
        # In chunks, one write each and one after the other: the queue keeps the request's order, and
        # other writers' operations run between chunks instead of waiting for the whole batch.
        for start in range(0, len(valid), WRITE_CHUNK):
            chunk = valid[start : start + WRITE_CHUNK]
            try:
                results.update(await self._write(lambda tx, chunk=chunk: op(tx, chunk)))  # type: ignore[misc]
            except AglError as exc:  # the chunk's commit failed: its items fail, those before stay enqueued
                results.update((i, exc) for i, _ in chunk)
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
        route = routing.Route.parse(request.namespace, request.queues, request.label_selector)
        return await self.dequeue(worker_id, limit, wait, route, running=request.running)

    async def dequeue(
        self,
        worker_id: str,
        limit: int,
        wait: float,
        route: routing.Route | None = None,
        *,
        running: bool = False,
    ) -> s.DequeueRolloutResponse:
        self._ensure_started()
        route = route or routing.Route()
        deadline = time.monotonic() + wait
        marked_idle = False
        while True:
            changed = self._queue_changed  # taken before looking, so a commit in between still wakes us
            if self._dispatch.has_match(route.namespace, route.queues, route.selector):
                claim = self._write(lambda tx: self._dequeue_op(tx, worker_id, limit, route, running))
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
                if not self._is_idle(worker_id, route):
                    await self._write(lambda tx: self._mark_idle(tx, worker_id, route))
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed:
                return s.DequeueRolloutResponse()
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return s.DequeueRolloutResponse()

    def queued_matching(self, route: routing.Route, cap: int) -> int:
        """Rollouts (an upper bound, in memory) a worker of ``route`` could claim now, up to ``cap``."""
        return self._dispatch.count_matching(route.namespace, route.queues, route.selector, cap)

    async def dequeue_for_workers(
        self, groups: Sequence[tuple[routing.Route, Sequence[tuple[str, int, bool]]]]
    ) -> list[list[list[t.Rollout]]]:
        """Claim for many workers in one write. ``groups``: per route, the workers that serve it as
        ``(worker id, limit, running)``, served in that order, each taking up to ``limit`` rollouts
        the route matches (claimed RUNNING when ``running``, as DequeueRolloutRequest.running); once
        one gets fewer than it asked, the route's queues hold nothing more for the rest. The answer
        has, per group, one list per worker. agl-server's dispatcher claims for all its Work streams
        this way, one write per round."""
        self._ensure_started()
        claim = self._write(lambda tx: self._dequeue_many_op(tx, groups))
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            claim.add_done_callback(self._release_abandoned_many)
            raise

    def _dequeue_many_op(
        self, tx: Tx, groups: Sequence[tuple[routing.Route, Sequence[tuple[str, int, bool]]]]
    ) -> list[list[list[t.Rollout]]]:
        out: list[list[list[t.Rollout]]] = []
        for route, claims in groups:
            results: list[list[t.Rollout]] = []
            exhausted = False
            for worker_id, limit, running in claims:
                claimed = [] if exhausted else self._dequeue_op(tx, worker_id, limit, route, running)
                exhausted = exhausted or len(claimed) < limit
                results.append(claimed)
            out.append(results)
        return out

    def _release_abandoned_many(self, claim: asyncio.Future[list[list[list[t.Rollout]]]]) -> None:
        if claim.cancelled() or claim.exception() is not None:
            return
        rollouts = [rollout for group in claim.result() for claimed in group for rollout in claimed]
        if rollouts:
            self._write(lambda tx: self._release_op(tx, rollouts)).add_done_callback(log_failure("release"))

    def _dequeue_op(
        self, tx: Tx, worker_id: str, limit: int, route: routing.Route, running: bool = False
    ) -> list[t.Rollout]:
        assert tx.effects is not None
        claimed: list[t.Rollout] = []
        while len(claimed) < limit:
            item = self._dispatch.pop(route.namespace, route.queues, route.selector)
            if item is None:
                break
            tx.effects.popped.append(item)
            record = tx.find_rollout(item.rollout_id)
            if record is None or record.queue_seq != item.seq:
                continue  # a stale entry: the rollout left the queue another way
            tx.txn.delete(U64.pack(item.seq), db=self.dbs.queue)
            if record.pb.status not in rules.QUEUED_ROLLOUT:
                record.queue_seq = 0
                tx.put_rollout(record)
                continue
            record.queue_seq = 0
            tx.new_attempt(record, worker_id, dequeued=True, running=running)
            claimed.append(tx.full_rollout(record))
        if claimed and worker_id:
            worker = tx.find_worker(worker_id)
            if worker is not None and _note_route(worker, route):
                tx.put_worker(worker)
        return claimed

    def _release_abandoned(self, claim: asyncio.Future[list[t.Rollout]]) -> None:
        if claim.cancelled() or claim.exception() is not None or not claim.result():
            return
        self._write(lambda tx: self._release_op(tx, claim.result())).add_done_callback(log_failure("release"))

    async def release_claims(self, rollouts: Sequence[t.Rollout]) -> None:
        """Undo claims whose answer never reached a worker (agl-server calls this when the caller of
        DequeueRollout went away): each attempt that is still untouched (the status it was claimed
        with, PREPARING or RUNNING, and no heartbeat) is dropped and its rollout goes back to the
        queue, so it is not stuck waiting for a worker that does not know it holds it."""
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
                or latest.status != claimed.attempt.status
                or latest.status not in (t.ATTEMPT_STATUS_PREPARING, t.ATTEMPT_STATUS_RUNNING)
                or latest.HasField("last_heartbeat_time")
                or record.pb.status != claimed.status
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

    def _is_idle(self, worker_id: str, route: routing.Route) -> bool:
        with self._begin() as txn:
            worker = Tx(txn, self.dbs).find_worker(worker_id)
        return (
            worker is not None
            and worker.status == t.WORKER_STATUS_IDLE
            and not worker.current_attempt_id
            and not _note_route(t.Worker(), route, worker)
        )

    def _mark_idle(self, tx: Tx, worker_id: str, route: routing.Route) -> None:
        worker = tx.find_worker(worker_id) or t.Worker(worker_id=worker_id)
        if _note_route(worker, route):
            tx.put_worker(worker)
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


def _note_route(worker: t.Worker, route: routing.Route, current: t.Worker | None = None) -> bool:
    """Record on ``worker`` what it serves; whether that differs from ``current`` (default: itself)."""
    current = current or worker
    if (
        current.namespace == route.namespace
        and tuple(current.queues) == route.queues
        and current.label_selector == route.selector.text
    ):
        return False
    worker.namespace = route.namespace
    worker.queues[:] = route.queues
    worker.label_selector = route.selector.text
    return True
