"""The worker side of RunnerService.Work: attempts pushed by agl-server, statuses sent back.

The stream survives a server restart (the retry policy of :mod:`agl_core.client.retry`: the
stream codes, back-off and one deadline): the source reconnects, says hello again
listing the attempts it still runs (so the new stream watches them), and resends every report
the old stream did not acknowledge (reports are idempotent in the store).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any

import grpc

from agl_core.client.channel import ChannelConfig, create_channel, default_address, map_rpc_error
from agl_core.client.retry import DEFAULT_RETRY_DEADLINE, STREAM_RETRYABLE, Outage
from agl_core.errors import AglError, UnavailableError, error_for_code
from agl_core.proto import runner_pb2 as r
from agl_core.proto import runner_pb2_grpc
from agl_core.runner.work import FINAL_STATUSES, Assignment, ReportOutcome, WorkSource, worker_info
from agl_core.store import routing
from agl_core.types import convert
from agl_core.types.core import AttemptStatus
from agl_core.types.values import to_struct

logger = logging.getLogger(__name__)


class WorkStreamSource(WorkSource):
    """Work pushed by agl-server on a Work stream.

    :param address: ``host:port`` of agl-server (default ``$AGL_SERVER_ADDRESS``).
    :param worker_id: the worker's id; empty lets the server pick one.
    :param capacity: attempts run at once.
    :param heartbeat_interval: seconds between heartbeats (the server gives up on the worker
        after three silent intervals); the first comes at a random point of the first interval, so
        that workers started together do not all beat at once.
    :param retry_deadline: seconds to keep reconnecting after the stream broke before the source
        fails (``reconnect_timeout`` is an older name for it).
    :param info: extra facts about the worker for its record (agent name, version, ...).
    :param namespace: the namespace (experiment) served; empty: the default one.
    :param queues: the queues served (default ``["default"]``).
    :param label_selector: only rollouts whose labels match (``"lang=go"``, ``{"lang": "go"}``;
        see docs/queues.md). Checked here, so a malformed one fails before connecting.
    :param start_on_assignment: the runner starts each attempt when it gets it, so agl-server
        hands it over RUNNING and the runner sends no RUNNING report (one message, its ack and a
        store write fewer per attempt). False: attempts arrive PREPARING and are reported RUNNING.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        worker_id: str | None = None,
        capacity: int = 1,
        heartbeat_interval: float = 10.0,
        token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        retry_deadline: float = DEFAULT_RETRY_DEADLINE,
        info: Mapping[str, Any] | None = None,
        reconnect_timeout: float | None = None,
        namespace: str = "",
        queues: Sequence[str] | None = None,
        label_selector: str | Mapping[str, str] | None = None,
        start_on_assignment: bool = True,
    ) -> None:
        import os

        self.route = routing.Route.parse(namespace, queues or (), routing.selector_text(label_selector))

        if reconnect_timeout is not None:
            retry_deadline = reconnect_timeout

        if capacity < 1:
            raise ValueError(f"capacity is {capacity}; a worker runs at least one attempt at a time")
        self.config = ChannelConfig(
            address=address or default_address(),
            token=token if token is not None else os.environ.get("AGL_TOKEN") or None,
            tls=tls,
            root_certificates=root_certificates,
            retry_deadline=retry_deadline,
        )
        self.worker_id = worker_id or ""
        self.capacity = capacity
        self.start_on_assignment = start_on_assignment
        self.heartbeat_interval = heartbeat_interval
        self.info = worker_info(**(info or {}))
        # attempt id -> rollout id: given to this worker and not finally reported.
        self.held: dict[str, str] = {}
        self._assignments: asyncio.Queue[Assignment | None] = asyncio.Queue()
        self._pending: dict[tuple[str, int], tuple[r.AttemptReport, asyncio.Future[r.AttemptReportAck]]] = {}
        self._call: Any = None
        self._channel: grpc.aio.Channel | None = None
        self._write_lock = asyncio.Lock()
        self._welcomed = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._heartbeats: asyncio.Task[None] | None = None
        self._draining = False
        self._closing = False
        self._error: AglError | None = None
        self._streams = 0

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._channel = create_channel(self.config)
        self._stub = runner_pb2_grpc.RunnerServiceStub(self._channel)
        self._supervisor = asyncio.create_task(self._supervise(), name="agl-work-stream")
        welcomed = asyncio.ensure_future(self._welcomed.wait())
        try:
            await asyncio.wait({welcomed, self._supervisor}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            welcomed.cancel()
        if self._error is not None:
            raise self._error
        self._heartbeats = asyncio.create_task(self._heartbeat_loop(), name="agl-work-heartbeats")

    async def drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        self._assignments.put_nowait(None)
        await self._send(r.WorkRequest(ready=r.WorkerReady(capacity=0)))

    async def close(self, *, abort: bool = False) -> None:
        if self._closing:
            return
        if not abort and self._pending:
            # Final statuses must reach the store before the stream ends, or the server would give
            # the attempts up.
            futures = [future for _, future in self._pending.values()]
            await asyncio.wait(futures, timeout=10.0)
        self._closing = True
        self._assignments.put_nowait(None)
        if self._heartbeats is not None:
            self._heartbeats.cancel()
        call = self._call
        if call is not None:
            if abort:
                call.cancel()
            else:
                with contextlib.suppress(Exception):
                    async with self._write_lock:
                        await call.done_writing()
        if self._supervisor is not None:
            if not abort:
                with contextlib.suppress(TimeoutError, Exception):
                    await asyncio.wait_for(asyncio.shield(self._supervisor), 5.0)
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(UnavailableError("the Work stream was closed before the report was acknowledged"))
        if self._channel is not None:
            await self._channel.close()

    # --- work --------------------------------------------------------------------------------------

    async def next(self) -> Assignment | None:
        if self._error is not None:
            raise self._error
        if self._draining and self._assignments.empty():
            return None
        assignment = await self._assignments.get()
        if assignment is None:
            if self._error is not None:
                raise self._error
            self._assignments.put_nowait(None)  # every later call returns None too
        return assignment

    async def report(
        self,
        rollout_id: str,
        attempt_id: str,
        status: AttemptStatus | str,
        metadata: Mapping[str, Any] | None = None,
    ) -> ReportOutcome:
        status = AttemptStatus(status)
        report = r.AttemptReport(
            rollout_id=rollout_id, attempt_id=attempt_id, status=convert.attempt_status_to_pb(status)
        )
        if metadata is not None:
            report.metadata.CopyFrom(to_struct(metadata, "metadata"))
        future: asyncio.Future[r.AttemptReportAck] = asyncio.get_running_loop().create_future()
        self._pending[(attempt_id, report.status)] = (report, future)
        if status in FINAL_STATUSES:
            self.held.pop(attempt_id, None)
        await self._send(r.WorkRequest(report=report))  # resent after a reconnect if this one is lost
        outcome = ReportOutcome(rollout_id, attempt_id, status)
        try:
            ack = await future
        except AglError as exc:
            outcome.error = exc
            return outcome
        if ack.code:
            outcome.error = error_for_code(ack.code, ack.message)
        return outcome

    # --- the stream --------------------------------------------------------------------------------

    async def _send(self, request: r.WorkRequest) -> bool:
        async with self._write_lock:
            call = self._call
            if call is None or self._closing:
                return False
            try:
                await call.write(request)
                return True
            except Exception as exc:  # the stream broke; the supervisor reconnects
                logger.debug("work stream write failed: %s", exc)
                return False

    async def _supervise(self) -> None:
        outage = Outage(self.config.retry_deadline)
        while not self._closing:
            streams = self._streams
            try:
                await self._serve_once()
                if self._closing:
                    return
                error: Exception = UnavailableError("agl-server ended the Work stream")
            except grpc.aio.AioRpcError as exc:
                if self._closing:
                    return
                if exc.code() not in STREAM_RETRYABLE:  # the server's answer (ABORTED: worker id taken over)
                    self._fail(map_rpc_error(exc, self.config.address))
                    return
                error = exc
            except AglError as exc:
                self._fail(exc)
                return
            self._call = None
            if self._streams > streams:  # that stream had worked: a new outage starts now
                outage.succeeded()
            wait = outage.failed()
            if wait is None:
                self._fail(
                    UnavailableError(
                        f"lost the Work stream to agl-server at {self.config.address} for more than "
                        f"{self.config.retry_deadline:g}s ({_describe(error)}); the attempts this worker held "
                        "are retried elsewhere"
                    )
                )
                return
            logger.warning("work stream to %s broke (%s); reconnecting", self.config.address, _describe(error))
            await asyncio.sleep(wait)

    async def _serve_once(self) -> None:
        call = self._stub.Work(metadata=self.config.metadata)
        hello = r.WorkerHello(
            worker_id=self.worker_id,
            capacity=0 if self._draining else self.capacity,
            active_attempts=[r.AttemptRef(rollout_id=rid, attempt_id=aid) for aid, rid in self.held.items()],
            info=to_struct(self.info, "info"),
            namespace=self.route.namespace,
            queues=self.route.queues,
            label_selector=self.route.selector.text,
            start_on_assignment=self.start_on_assignment,
        )
        hello.heartbeat_interval.FromNanoseconds(int(self.heartbeat_interval * 1e9))
        await call.write(r.WorkRequest(hello=hello))
        first = await call.read()
        if first is grpc.aio.EOF:
            await call  # raises the status the server ended the stream with
            raise UnavailableError("agl-server closed the Work stream before welcoming the worker")
        if first.WhichOneof("kind") != "welcome":
            raise AglError(f"agl-server answered hello with {first.WhichOneof('kind')}, not welcome")
        self.worker_id = first.welcome.worker_id
        self._streams += 1
        async with self._write_lock:
            self._call = call
            # Reports the previous stream did not acknowledge, in the order they were made.
            for report, future in list(self._pending.values()):
                if not future.done():
                    await call.write(r.WorkRequest(report=report))
        if self._draining:
            await self._send(r.WorkRequest(ready=r.WorkerReady(capacity=0)))
        self._welcomed.set()
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                await call
                return
            kind = response.WhichOneof("kind")
            if kind == "assignment":
                assignment = response.assignment
                self.held[assignment.rollout.attempt.attempt_id] = assignment.rollout.rollout_id
                self._assignments.put_nowait(
                    Assignment.from_pb(
                        assignment.rollout,
                        assignment.resources if assignment.HasField("resources") else None,
                        assignment.resources_error,
                    )
                )
            elif kind == "report_ack":
                ack = response.report_ack
                pending = self._pending.pop((ack.attempt_id, ack.status), None)
                if pending is not None and not pending[1].done():
                    pending[1].set_result(ack)

    def _fail(self, error: AglError) -> None:
        logger.error("work stream failed: %s", error)
        self._error = error
        self._assignments.put_nowait(None)
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(error)

    async def _heartbeat_loop(self) -> None:
        # The first heartbeat comes at a random point of the first interval. Workers started together
        # (a launcher starting a fleet) would otherwise beat in the same instant every interval, and
        # each beat is a store write: 1,000 at once held dispatch back for tens of milliseconds.
        await asyncio.sleep(random.uniform(0, self.heartbeat_interval))
        while True:
            stats = to_struct({"running_attempts": len(self.held)}, "stats")
            await self._send(r.WorkRequest(heartbeat=r.WorkerHeartbeat(stats=stats)))
            await asyncio.sleep(self.heartbeat_interval)


def _describe(error: Exception) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return str(error)
