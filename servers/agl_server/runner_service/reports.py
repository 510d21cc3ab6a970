"""The part of a Work session that applies what the worker reports: attempt reports (acknowledged
one by one, in order within an attempt, concurrently across attempts so they share group commits)
and heartbeats (the worker record and the heartbeat of every attempt it holds)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agl_core.errors import AglError, FailedPreconditionError, InvalidArgumentError, NotFoundError, code_number
from agl_core.proto import runner_pb2 as r
from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_core.store import validation
from agl_core.store.backend import StoreBackend
from agl_server.runner_service.attempt_heartbeats import AttemptHeartbeats
from agl_server.runner_service.coalesce import outcomes

logger = logging.getLogger("agl_server")

REPORTABLE = frozenset({t.ATTEMPT_STATUS_RUNNING, t.ATTEMPT_STATUS_SUCCEEDED, t.ATTEMPT_STATUS_FAILED})


@dataclass
class QueuedReport:
    report: r.AttemptReport
    # Whether the attempt was held on this stream when the report arrived (else it is checked).
    held: bool
    # Why the report cannot be applied (a value the store cannot hold); answered in its ack.
    problem: str | None = None
    # A final report of a held attempt: it frees a slot (new work is pushed after its ack).
    frees: bool = False


@dataclass
class QueuedHeartbeat:
    stats: dict[str, Any] | None


STOP = object()


def status_name(status: int) -> str:
    return (
        t.AttemptStatus.Name(status).removeprefix("ATTEMPT_STATUS_").lower()
        if status in t.AttemptStatus.values()
        else str(status)
    )


class ReportProcessing:
    """Mixed into :class:`~.session.WorkSession`, which sets these attributes."""

    backend: StoreBackend
    worker_id: str
    active: dict[str, str]
    _inbox: asyncio.Queue[Any]
    _send: Callable[[r.WorkResponse], Awaitable[None]]
    _worker_stats: dict[str, Any]
    _unacked_frees: int
    _frees_acked: asyncio.Event

    attempt_heartbeats: AttemptHeartbeats
    _beating: asyncio.Task[None] | None
    update_worker: Callable[..., Awaitable[None]]

    async def _process(self) -> None:
        stopping = False
        while not stopping:
            batch = [await self._inbox.get()]
            while not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            # Reports of different attempts are applied together (they share a group commit);
            # those of one attempt in the order they came (RUNNING before SUCCEEDED).
            groups: dict[str, list[QueuedReport]] = {}
            for item in batch:
                if item is STOP:
                    stopping = True
                elif isinstance(item, QueuedReport):
                    groups.setdefault(item.report.attempt_id, []).append(item)
                else:
                    self._heartbeat(item)
            await asyncio.gather(*(self._apply(items) for items in groups.values()))
        # The heartbeat still being written lands before the stream's end is (close() follows).
        if self._beating is not None:
            await asyncio.gather(self._beating, return_exceptions=True)

    def _heartbeat(self, item: QueuedHeartbeat) -> None:
        """Write the heartbeat apart from the reports: its writes may linger a moment for other
        streams' (coalesce.py), and the reports that follow it need not wait for them. While one
        is being written, another only updates the stats (the next heartbeat, or the end, writes them)."""
        if item.stats is not None:
            self._worker_stats = item.stats
        if self._beating is None or self._beating.done():
            self._beating = asyncio.ensure_future(self._apply_heartbeat())

    async def _apply(self, items: list[QueuedReport]) -> None:
        for item in items:
            try:
                await self._apply_report(item)
            except Exception:
                logger.exception("worker %s: applying a report failed", self.worker_id)

    async def _apply_report(self, item: QueuedReport) -> None:
        try:
            await self._record_report(item)
        finally:
            if item.frees:
                self._unacked_frees -= 1
                if not self._unacked_frees:
                    self._frees_acked.set()

    async def _record_report(self, item: QueuedReport) -> None:
        report = item.report
        ack = r.AttemptReportAck(rollout_id=report.rollout_id, attempt_id=report.attempt_id, status=report.status)
        try:
            if item.problem is not None:
                raise InvalidArgumentError(item.problem)
            if report.status not in REPORTABLE:
                raise InvalidArgumentError(
                    f"report.status is {status_name(report.status)}; a worker reports running, succeeded or "
                    "failed (timeout and unresponsive are decided by the store)"
                )
            validation.require_id(report.rollout_id, "report.rollout_id")
            validation.require_id(report.attempt_id, "report.attempt_id")
            if not item.held:
                await self._check_owner(report)
            request = s.UpdateAttemptRequest(
                rollout_id=report.rollout_id, attempt_id=report.attempt_id, status=report.status
            )
            if report.HasField("metadata"):
                request.metadata.CopyFrom(report.metadata)
            await self.backend.update_attempt(request)
        except AglError as exc:
            ack.code = code_number(exc)
            ack.message = exc.message
        with contextlib.suppress(Exception):  # the stream may be gone; the store has the report
            await self._send(r.WorkResponse(report_ack=ack))

    async def _check_owner(self, report: r.AttemptReport) -> None:
        """A report of an attempt this stream does not hold: accept it only from its own worker
        (a worker finishing an attempt of an earlier stream)."""
        response = await self.backend.query_attempts(
            s.QueryAttemptsRequest(rollout_id=report.rollout_id, order=t.SORT_ORDER_DESC, limit=validation.MAX_PAGE)
        )
        attempt = next((a for a in response.attempts if a.attempt_id == report.attempt_id), None)
        if attempt is None:
            raise NotFoundError(f"attempt {report.attempt_id!r} of rollout {report.rollout_id!r} not found")
        if attempt.worker_id != self.worker_id:
            raise FailedPreconditionError(
                f"attempt {report.attempt_id!r} belongs to worker {attempt.worker_id!r}, "
                f"not {self.worker_id!r}; "
                "a worker reports only the attempts it was given"
            )

    async def _apply_heartbeat(self) -> None:
        # The worker record and the held attempts' beats are asked for together, so they share a
        # group commit: one sync per heartbeat, not one for the record and then one for the beats.
        now = time.time_ns()
        beat = self.attempt_heartbeats.beat
        worker, *beats = await outcomes(
            self.update_worker(urgent=False), *(beat(rollout_id, aid, now) for aid, rollout_id in self.active.items())
        )
        # An attempt finished meanwhile is no longer found (an AglError): nothing to say.
        for result in beats:
            if isinstance(result, Exception) and not isinstance(result, AglError):
                logger.warning("worker %s: attempt heartbeat failed: %s", self.worker_id, result)
        if isinstance(worker, Exception):
            logger.warning("worker %s: heartbeat's worker-record write failed: %s", self.worker_id, worker)
