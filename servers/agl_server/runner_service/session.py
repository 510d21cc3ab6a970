"""One worker's Work stream on the server: dispatching, reports, heartbeats, and the end of it.

A session runs three tasks: the *reader* (hands every message on at once, never waits on the
store), the *pusher* (claims once when the stream opens, then tells the server's
:class:`~.dispatcher.Dispatcher` whenever the worker has room and pushes what it is given) and the
*processor* (:mod:`.reports`: applies reports and heartbeats to the store, concurrently across attempts, in
order within one attempt). Whatever ends first ends the session; :meth:`WorkSession.close`
then marks every attempt the worker still holds UNRESPONSIVE, so the retry policy applies at
once instead of after a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from agl_core.errors import (
    AglError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from agl_core.proto import resources_pb2
from agl_core.proto import runner_pb2 as r
from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_core.runner.queue_signal import QueueSignal
from agl_core.store import routing, validation
from agl_core.store.backend import StoreBackend
from agl_core.store.request_checks import check_request
from agl_core.types.values import from_struct, to_struct
from agl_server.runner_service.attempt_heartbeats import AttemptHeartbeats
from agl_server.runner_service.dispatcher import Dispatcher
from agl_server.runner_service.reports import STOP, QueuedHeartbeat, QueuedReport, ReportProcessing
from agl_server.runner_service.worker_writes import WorkerWrites

logger = logging.getLogger("agl_server")

FINAL = frozenset({t.ATTEMPT_STATUS_SUCCEEDED, t.ATTEMPT_STATUS_FAILED})
# Intervals without any message from the worker after which its stream is ended.
SILENT_INTERVALS = 3


class SessionEnded(Exception):
    """The session must end with this gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class WorkSession(ReportProcessing):
    """The server side of one worker's Work stream.

    :param send: writes one response on the stream (the caller serialises writes).
    :param on_close: called once the session has released everything.
    """

    def __init__(
        self,
        *,
        backend: StoreBackend,
        signal: QueueSignal,
        worker_id: str,
        capacity: int,
        heartbeat_interval: float,
        info: dict[str, Any],
        send: Callable[[r.WorkResponse], Awaitable[None]],
        is_owner: Callable[[WorkSession], bool],
        route: routing.Route | None = None,
        dispatcher: Dispatcher,
        worker_writes: WorkerWrites,
        attempt_heartbeats: AttemptHeartbeats,
        start_on_assignment: bool = False,
    ) -> None:
        self.backend = backend
        self.signal = signal
        self.worker_id = worker_id
        self.capacity = capacity
        self.heartbeat_interval = heartbeat_interval
        self.info = info
        self.route = route or routing.Route()
        # The worker starts what it is given at once: its attempts are claimed RUNNING.
        self.start_on_assignment = start_on_assignment
        self._send = send
        self._is_owner = is_owner
        # attempt id -> rollout id of every attempt given to the worker and not finally reported.
        self.active: dict[str, str] = {}
        self.assigned = 0
        self.end: SessionEnded | None = None
        # Set by the server's shutdown: the worker stays alive and will reconnect, so its
        # attempts are left running rather than given up.
        self.keep_attempts = False
        self._worker_stats: dict[str, Any] = {}
        self._dispatcher = dispatcher
        # Worker-record writes (welcome, heartbeats, the end) go with other streams' (worker_writes.py).
        self._worker_writes = worker_writes
        # And the heartbeats of the attempts it holds with theirs (attempt_heartbeats.py).
        self.attempt_heartbeats = attempt_heartbeats
        # The heartbeat being written, apart from the reports (see reports.py), if any.
        self._beating: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[list[t.Rollout]] = asyncio.Queue()
        # Set when the session stops taking work: a claim that lands later is handed back.
        self._stopped = False
        # Final reports received and not yet acknowledged: work claimed for the slots they freed
        # is pushed only after their acks, so a worker sees a report's ack before new work.
        self._unacked_frees = 0
        self._frees_acked = asyncio.Event()
        self._frees_acked.set()
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._claims: set[asyncio.Task[Any]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def heartbeat_timeout(self) -> float:
        return self.heartbeat_interval * SILENT_INTERVALS

    # --- running -----------------------------------------------------------------------------------

    async def run(self, requests: AsyncIterator[r.WorkRequest]) -> None:
        """Serve the stream until the worker leaves, falls silent or breaks the protocol, a push
        fails, or :meth:`stop` is called."""
        pusher = asyncio.create_task(self._serve(), name=f"agl-push-{self.worker_id}")
        processor = asyncio.create_task(self._process(), name=f"agl-reports-{self.worker_id}")
        self._reader = asyncio.create_task(self._read(requests), name=f"agl-read-{self.worker_id}")
        try:
            done, _ = await asyncio.wait({self._reader, pusher}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.cancelled():
                    continue
                error = task.exception()
                if isinstance(error, SessionEnded):
                    self.end = self.end or error
                elif error is not None and not isinstance(error, (asyncio.CancelledError, grpc.aio.AbortError)):
                    logger.info("work stream of worker %s ended: %s", self.worker_id, error)
        finally:
            await self._shutdown_tasks(pusher, processor)

    def stop(self, code: grpc.StatusCode, message: str, *, keep_attempts: bool = False) -> None:
        """End the session from outside (a newer stream of the worker, server shutdown)."""
        self.end = self.end or SessionEnded(code, message)
        self.keep_attempts = self.keep_attempts or keep_attempts
        if self._reader is not None:
            self._reader.cancel()

    async def _shutdown_tasks(self, pusher: asyncio.Task[None], processor: asyncio.Task[None]) -> None:
        assert self._reader is not None
        self._stopped = True
        self._dispatcher.forget(self)
        for task in (self._reader, pusher):
            task.cancel()
        await asyncio.gather(self._reader, pusher, return_exceptions=True)
        # The stream's own claim that was committing when the pusher stopped still lands in `active`.
        if self._claims:
            await asyncio.gather(*self._claims, return_exceptions=True)
        # Reports that arrived before the end are applied before anything is given up.
        self._inbox.put_nowait(STOP)
        await asyncio.gather(processor, return_exceptions=True)

    # --- reading -----------------------------------------------------------------------------------

    async def _read(self, requests: AsyncIterator[r.WorkRequest]) -> None:
        while True:
            try:
                request = await asyncio.wait_for(anext(requests), self.heartbeat_timeout)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise SessionEnded(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"worker {self.worker_id!r} sent nothing for {self.heartbeat_timeout:g}s "
                    "(three heartbeat "
                    "intervals); its attempts were given up. Send a heartbeat every heartbeat_interval.",
                ) from None
            self.handle(request)

    def handle(self, request: r.WorkRequest) -> None:
        """Take one message from the worker; never waits."""
        kind = request.WhichOneof("kind")
        if kind == "report":
            report = request.report
            held = report.attempt_id in self.active
            try:
                check_request(report, "report")
            except InvalidArgumentError as exc:
                # Refused in its ack; the attempt stays held (and is given up if the stream ends).
                self._inbox.put_nowait(QueuedReport(report, held, exc.message))
                return
            frees = report.status in FINAL and held
            if frees:
                # The worker is done with it: its slot is free now, whatever the store says later, so
                # the claim for it shares a commit with the report (new work follows the ack).
                del self.active[report.attempt_id]
                self._unacked_frees += 1
                self._frees_acked.clear()
                self._has_room()
            self._inbox.put_nowait(QueuedReport(report, held, frees=frees))
        elif kind == "heartbeat":
            try:
                check_request(request.heartbeat, "heartbeat")
            except InvalidArgumentError as exc:
                raise SessionEnded(grpc.StatusCode.INVALID_ARGUMENT, exc.message) from None
            self._inbox.put_nowait(
                QueuedHeartbeat(from_struct(request.heartbeat.stats) if request.heartbeat.HasField("stats") else None)
            )
        elif kind == "ready":
            if request.ready.capacity < 0:
                raise SessionEnded(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"ready.capacity is {request.ready.capacity}; it must be 0 (drain) or more",
                )
            self.capacity = request.ready.capacity
            self._has_room()
        elif kind == "hello":
            raise SessionEnded(
                grpc.StatusCode.INVALID_ARGUMENT,
                "hello may only be the first message of a Work stream; open a new stream to say hello again",
            )
        else:
            raise SessionEnded(
                grpc.StatusCode.INVALID_ARGUMENT,
                "empty WorkRequest; set one of hello, ready, report or heartbeat",
            )

    # --- dispatching -------------------------------------------------------------------------------

    def room(self) -> int:
        """Attempts the worker can take now (0 once the session stops)."""
        return 0 if self._stopped else self.capacity - len(self.active)

    def deliver(self, rollouts: list[t.Rollout]) -> bool:
        """Rollouts the dispatcher claimed for this worker: held at once, pushed in order by the
        session's pusher. False when the session has stopped (the caller hands them back)."""
        if self._stopped:
            return False
        for rollout in rollouts:
            self.active[rollout.attempt.attempt_id] = rollout.rollout_id
        self._outbox.put_nowait(rollouts)
        return True

    def _has_room(self) -> None:
        self._dispatcher.want(self)

    async def _serve(self) -> None:
        """Push what the worker is given, in order. One claim of its own first: it also records
        the worker's route and marks it idle when nothing is queued for it; from then on the
        server's dispatcher claims for it whenever it has room."""
        await self.signal.ready()
        if self.room() > 0:
            claimed = await self._claim(self.room())
            if claimed:
                await self._push(claimed)
        self._has_room()
        while True:
            await self._push(await self._outbox.get())

    def dequeue_request(self, limit: int) -> s.DequeueRolloutRequest:
        """A non-waiting claim of up to ``limit`` rollouts that the worker's namespace, queues and
        selector allow."""
        return s.DequeueRolloutRequest(
            worker_id=self.worker_id,
            limit=limit,
            namespace=self.route.namespace,
            queues=self.route.queues,
            label_selector=self.route.selector.text,
            running=self.start_on_assignment,
        )

    async def _claim(self, limit: int) -> list[t.Rollout]:
        request = self.dequeue_request(min(limit, validation.MAX_PAGE))
        claim = asyncio.ensure_future(self.backend.dequeue_rollout(request))
        # Registered before anyone awaits the claim, so the attempts are held (and given up if the
        # stream ends) even when the dispatcher is cancelled while the claim commits.
        claim.add_done_callback(self._claimed)
        self._claims.add(claim)
        response = await asyncio.shield(claim)
        return list(response.rollouts)

    def _claimed(self, claim: asyncio.Future[s.DequeueRolloutResponse]) -> None:
        self._claims.discard(claim)  # type: ignore[arg-type]
        if claim.cancelled() or claim.exception() is not None:
            return
        for rollout in claim.result().rollouts:
            self.active[rollout.attempt.attempt_id] = rollout.rollout_id

    async def _push(self, rollouts: list[t.Rollout]) -> None:
        resolved: dict[str, tuple[resources_pb2.ResourcesUpdate | None, str]] = {}
        for rollout in rollouts:
            if rollout.resources_id not in resolved:
                resolved[rollout.resources_id] = await self._resources(rollout.resources_id, rollout.namespace)
            resources, error = resolved[rollout.resources_id]
            assignment = r.AttemptAssignment(rollout=rollout, resources_error=error)
            if resources is not None:
                assignment.resources.CopyFrom(resources)
            await self._frees_acked.wait()
            await self._send(r.WorkResponse(assignment=assignment))
            self.assigned += 1

    async def _resources(self, resources_id: str, namespace: str) -> tuple[resources_pb2.ResourcesUpdate | None, str]:
        # The pinned set by its id (whatever its namespace); without one, the namespace's latest.
        request = s.GetResourcesRequest(resources_id=resources_id, namespace="" if resources_id else namespace)
        try:
            response = await self.backend.get_resources(request)
        except NotFoundError:
            if resources_id:
                return None, f"resources {resources_id!r} not found in the store"
            return None, ""
        return response.resources, ""

    def stats(self, connected: bool) -> dict[str, Any]:
        return {
            **self.info,
            **self._worker_stats,
            "capacity": self.capacity,
            "active_attempts": len(self.active),
            "assigned_attempts": self.assigned,
            "connected": connected,
            # Marks a worker whose liveness is its stream (see recovery.py); polling workers lack it.
            "work_stream": True,
        }

    async def update_worker(self, *, connected: bool = True, status: int | None = None, urgent: bool = True) -> None:
        request = s.UpdateWorkerRequest(worker_id=self.worker_id)
        request.heartbeat_stats.CopyFrom(to_struct(self.stats(connected), "heartbeat_stats"))
        if status is not None:
            request.status = status
        await self._worker_writes.update(request, urgent=urgent)

    # --- the end -----------------------------------------------------------------------------------

    async def adopt(self, refs: list[r.AttemptRef]) -> None:
        """Hold again the attempts a reconnecting worker says it still runs (its own, unfinished)."""
        for ref in refs:
            if ref.attempt_id in self.active:
                continue
            try:
                await self._check_owner(r.AttemptReport(rollout_id=ref.rollout_id, attempt_id=ref.attempt_id))
            except AglError as exc:
                logger.info("worker %s: not adopting attempt %s: %s", self.worker_id, ref.attempt_id, exc)
                continue
            self.active[ref.attempt_id] = ref.rollout_id

    async def close(self) -> None:
        """Give up the attempts the worker still holds and mark the worker UNKNOWN."""
        if self._closed:
            return
        self._closed = True
        held = dict(self.active)
        give_up = not self.keep_attempts  # decided now: a shutdown starting meanwhile does not undo it
        if give_up:
            self.active.clear()
        # The record first: whoever sees the attempts given up also sees the worker gone.
        if self._is_owner(self):
            with contextlib.suppress(AglError):
                await self.update_worker(connected=False, status=t.WORKER_STATUS_UNKNOWN)
        if held and give_up:
            await asyncio.gather(*(self._give_up(rid, aid) for aid, rid in held.items()))
            logger.info(
                "work stream of worker %s ended; %d attempt(s) it held marked unresponsive",
                self.worker_id,
                len(held),
            )

    async def _give_up(self, rollout_id: str, attempt_id: str) -> None:
        request = s.UpdateAttemptRequest(
            rollout_id=rollout_id, attempt_id=attempt_id, status=t.ATTEMPT_STATUS_UNRESPONSIVE
        )
        try:
            await self.backend.update_attempt(request)
        except (FailedPreconditionError, NotFoundError):
            pass  # it finished (or timed out) meanwhile: nothing to give up
        except AglError as exc:
            logger.warning("worker %s: could not mark attempt %s unresponsive: %s", self.worker_id, attempt_id, exc)

    def transfer(self, attempt_ids: set[str]) -> dict[str, str]:
        """Hand the listed attempts to a newer stream of the same worker (they are not given up)."""
        moved = {aid: rid for aid, rid in self.active.items() if aid in attempt_ids}
        for aid in moved:
            del self.active[aid]
        return moved
