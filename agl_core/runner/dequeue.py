"""Work claimed from a store directly: the embedded path, and the long-poll path over gRPC.

By default the source claims with a non-waiting dequeue and waits for the queue on the store's
event log (:class:`~agl_core.runner.queue_signal.QueueSignal`), so it can stop at any moment
without stranding a claim. With ``poll_wait`` it long-polls ``dequeue_rollouts(wait=...)``
instead, which is what a worker without the Work stream does (the runner benchmark compares
the two); stopping then waits for the poll in flight to return.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

from agl_core.errors import AglError, FailedPreconditionError, NotFoundError
from agl_core.runner.queue_signal import QueueSignal, store_follow
from agl_core.runner.work import FINAL_STATUSES, Assignment, ReportOutcome, WorkSource, worker_info
from agl_core.store import routing
from agl_core.types.core import AttemptStatus, Rollout, WorkerStatus
from agl_core.types.resources import ResourcesUpdate

logger = logging.getLogger(__name__)


class DequeueSource(WorkSource):
    """Claims work from ``store`` (an ``LmdbStore``, ``GrpcStore`` or ``ThreadSafeStore``).

    :param worker_id: the worker's id in the store.
    :param capacity: attempts run at once.
    :param poll_wait: ``None`` (default) waits for queued work on the event log; a number of
        seconds long-polls ``dequeue_rollouts`` instead.
    :param heartbeat_interval: seconds between heartbeats of the worker and its attempts.
    :param queues: the queues served (default ``["default"]``); the namespace is the store's.
    :param label_selector: only rollouts whose labels match (``"lang=go"``, ``{"lang": "go"}``).
    :param start_on_assignment: claim attempts RUNNING (the runner starts each one when it gets
        it, so it sends no RUNNING update: one durable write fewer per attempt). False: they are
        claimed PREPARING and reported RUNNING.
    """

    def __init__(
        self,
        store: Any,
        *,
        worker_id: str,
        capacity: int = 1,
        poll_wait: float | None = None,
        heartbeat_interval: float = 10.0,
        info: Mapping[str, Any] | None = None,
        queues: Sequence[str] | None = None,
        label_selector: str | Mapping[str, str] | None = None,
        start_on_assignment: bool = True,
    ) -> None:
        # Checked here, so a malformed selector fails before the worker starts.
        self.route = routing.Route.parse("", queues or (), routing.selector_text(label_selector))
        if capacity < 1:
            raise ValueError(f"capacity is {capacity}; a worker runs at least one attempt at a time")
        if poll_wait is not None and poll_wait <= 0:
            raise ValueError(f"poll_wait is {poll_wait}; give a positive number of seconds, or None")
        self.store = store
        self.worker_id = worker_id
        self.start_on_assignment = start_on_assignment
        self.capacity = capacity
        self.poll_wait = poll_wait
        self.heartbeat_interval = heartbeat_interval
        self.info = worker_info(**(info or {}))
        # attempt id -> rollout id: claimed for this worker and not finally reported.
        self.held: dict[str, str] = {}
        self._assignments: asyncio.Queue[Assignment | None] = asyncio.Queue()
        self._room = asyncio.Event()
        self._drained = asyncio.Event()
        self._claims: set[asyncio.Future[Any]] = set()
        self._signal: QueueSignal | None = None
        self._claimer: asyncio.Task[None] | None = None
        self._heartbeats: asyncio.Task[None] | None = None
        self._draining = False
        self._closed = False
        self._error: BaseException | None = None

    async def start(self) -> None:
        await self.store.update_worker(self.worker_id, heartbeat_stats=self._stats(True), status=WorkerStatus.IDLE)
        if self.poll_wait is None:
            self._signal = QueueSignal(store_follow(self.store), name=f"agl-queue-{self.worker_id}")
        self._claimer = asyncio.create_task(self._claim_loop(), name=f"agl-claim-{self.worker_id}")
        self._heartbeats = asyncio.create_task(self._heartbeat_loop(), name=f"agl-heartbeat-{self.worker_id}")

    # --- claiming ----------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        try:
            if self._signal is not None:
                await self._signal.ready()
            while not self._draining:
                if self.capacity - len(self.held) <= 0:
                    self._room.clear()
                    await _first(self._room.wait(), self._drained.wait())
                    continue
                changed = self._signal.current() if self._signal is not None else None
                rollouts = await self._claim(self.capacity - len(self.held))
                if rollouts:
                    await self._hand_over(rollouts)
                elif changed is not None and not self._draining:
                    await _first(changed.wait(), self._drained.wait())
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._error = exc
            logger.error("worker %s stopped taking work: %s", self.worker_id, exc)
        finally:
            self._assignments.put_nowait(None)

    async def _claim(self, limit: int) -> list[Rollout]:
        claim = asyncio.ensure_future(
            self.store.dequeue_rollouts(
                limit=limit,
                worker_id=self.worker_id,
                wait=self.poll_wait,
                queues=self.route.queues,
                label_selector=self.route.selector.text,
                running=self.start_on_assignment,
            )
        )
        # Registered before anyone awaits the claim: the attempts are held (and given up on close)
        # even when the claimer is cancelled while the claim commits.
        claim.add_done_callback(self._claimed)
        self._claims.add(claim)
        return list(await asyncio.shield(claim))

    def _claimed(self, claim: asyncio.Future[list[Rollout]]) -> None:
        self._claims.discard(claim)
        if claim.cancelled() or claim.exception() is not None:
            return
        for rollout in claim.result():
            assert rollout.attempt is not None
            self.held[rollout.attempt.attempt_id] = rollout.rollout_id

    async def _hand_over(self, rollouts: list[Rollout]) -> None:
        resolved: dict[str | None, tuple[ResourcesUpdate | None, str]] = {}
        for rollout in rollouts:
            if rollout.resources_id not in resolved:
                resolved[rollout.resources_id] = await self._resources(rollout.resources_id)
            update, error = resolved[rollout.resources_id]
            self._assignments.put_nowait(
                Assignment(
                    rollout=rollout,
                    resources=dict(update.resources) if update is not None else {},
                    resources_id=update.resources_id if update is not None else None,
                    resources_error=error,
                )
            )

    async def _resources(self, resources_id: str | None) -> tuple[ResourcesUpdate | None, str]:
        if resources_id:
            update = await self.store.get_resources(resources_id)
            return update, "" if update is not None else f"resources {resources_id!r} not found in the store"
        return await self.store.get_latest_resources(), ""

    # --- the WorkSource API ------------------------------------------------------------------------

    async def next(self) -> Assignment | None:
        assignment = await self._assignments.get()
        if assignment is None:
            self._assignments.put_nowait(None)  # every later call returns None too
            if self._error is not None and not self._closed:
                raise self._error
        return assignment

    async def report(
        self,
        rollout_id: str,
        attempt_id: str,
        status: AttemptStatus | str,
        metadata: Mapping[str, Any] | None = None,
    ) -> ReportOutcome:
        status = AttemptStatus(status)
        outcome = ReportOutcome(rollout_id, attempt_id, status)
        try:
            if metadata is not None:
                await self.store.update_attempt(rollout_id, attempt_id, status=status, metadata=metadata)
            else:
                await self.store.update_attempt(rollout_id, attempt_id, status=status)
        except AglError as exc:
            outcome.error = exc
        if status in FINAL_STATUSES and self.held.pop(attempt_id, None) is not None:
            self._room.set()
        return outcome

    async def drain(self) -> None:
        self._draining = True
        self._drained.set()

    async def close(self, *, abort: bool = False) -> None:
        if self._closed:
            return
        self._draining = True
        self._drained.set()
        if self._claimer is not None:
            if abort or self.poll_wait is None:
                self._claimer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._claimer
        if self._claims:  # a claim committing right now still lands in `held`
            await asyncio.gather(*self._claims, return_exceptions=True)
        self._closed = True
        self._assignments.put_nowait(None)
        if self._heartbeats is not None:
            self._heartbeats.cancel()
        if self._signal is not None:
            await self._signal.close()
        held, self.held = dict(self.held), {}
        await asyncio.gather(*(self._give_up(rid, aid) for aid, rid in held.items()))
        with contextlib.suppress(AglError):
            await self.store.update_worker(
                self.worker_id, heartbeat_stats=self._stats(False), status=WorkerStatus.UNKNOWN
            )

    async def _give_up(self, rollout_id: str, attempt_id: str) -> None:
        try:
            await self.store.update_attempt(rollout_id, attempt_id, status=AttemptStatus.UNRESPONSIVE)
        except (FailedPreconditionError, NotFoundError):
            pass  # it finished or timed out meanwhile
        except AglError as exc:
            logger.warning("worker %s could not give up attempt %s: %s", self.worker_id, attempt_id, exc)

    # --- heartbeats --------------------------------------------------------------------------------

    def _stats(self, connected: bool) -> dict[str, Any]:
        return {
            **self.info,
            "capacity": self.capacity,
            "running_attempts": len(self.held),
            "connected": connected,
        }

    async def _heartbeat_loop(self) -> None:
        # The first at a random point of the first interval, as WorkStreamSource does: workers
        # started together would otherwise write their heartbeats in the same instant every interval.
        delay = random.uniform(0, self.heartbeat_interval)
        while True:
            await asyncio.sleep(delay)
            delay = self.heartbeat_interval
            try:
                await self.store.update_worker(self.worker_id, heartbeat_stats=self._stats(True))
                now = time.time()
                await asyncio.gather(
                    *(
                        self.store.update_attempt(rid, aid, last_heartbeat_time=now)
                        for aid, rid in list(self.held.items())
                    ),
                    return_exceptions=True,
                )
            except AglError as exc:
                logger.warning("worker %s heartbeat failed: %s", self.worker_id, exc)


async def _first(*aws: Any) -> None:
    """Wait until the first of ``aws`` completes; cancel the rest."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
