"""A Work stream driven message by message with raw gRPC, for tests of RunnerService."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from agl_core.proto import runner_pb2 as r
from agl_core.proto import runner_pb2_grpc
from support.waits import until


class RawWorker:
    """One Work stream, driven by hand. A reader task collects what the server sends (cancelling a
    pending read would cancel the whole call)."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.call = runner_pb2_grpc.RunnerServiceStub(self.channel).Work()
        self.inbox: asyncio.Queue[r.WorkResponse | grpc.StatusCode] = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            while (response := await self.call.read()) is not grpc.aio.EOF:
                self.inbox.put_nowait(response)
            self.inbox.put_nowait(await self.call.code())
        except grpc.aio.AioRpcError as exc:
            self.inbox.put_nowait(exc.code())

    async def hello(self, worker_id: str = "", capacity: int = 1, **fields: object) -> r.WorkerWelcome:
        await self.call.write(r.WorkRequest(hello=r.WorkerHello(worker_id=worker_id, capacity=capacity, **fields)))
        response = await self.recv()
        assert response.WhichOneof("kind") == "welcome"
        return response.welcome

    async def send(self, **kind: object) -> None:
        await self.call.write(r.WorkRequest(**kind))

    async def recv(self, within: float = 10.0) -> r.WorkResponse:
        response = await asyncio.wait_for(self.inbox.get(), within)
        assert isinstance(response, r.WorkResponse), f"the server ended the stream with {response}"
        return response

    async def assignment(self, within: float = 10.0) -> r.AttemptAssignment:
        response = await self.recv(within)
        assert response.WhichOneof("kind") == "assignment", response
        return response.assignment

    async def report(self, assignment: r.AttemptAssignment, status: int, **fields: object) -> r.AttemptReportAck:
        await self.send(
            report=r.AttemptReport(
                rollout_id=assignment.rollout.rollout_id,
                attempt_id=assignment.rollout.attempt.attempt_id,
                status=status,
                **fields,
            )
        )
        response = await self.recv()
        assert response.WhichOneof("kind") == "report_ack", response
        return response.report_ack

    async def ended_with(self, within: float = 10.0) -> grpc.StatusCode:
        """The status code the server ended the stream with (messages before it are skipped)."""
        while True:
            item = await asyncio.wait_for(self.inbox.get(), within)
            if isinstance(item, grpc.StatusCode):
                return item

    async def close(self) -> None:
        self.call.cancel()
        self.reader.cancel()
        await self.channel.close()


async def idle_worker(address: str, store: Any, worker_id: str, opened: list[RawWorker] | None = None) -> RawWorker:
    """A Work stream (capacity 1) whose first look at the empty queue is done: from then on it
    waits for the dispatcher. The store (any client of the server) records that look as the
    worker's last dequeue. ``opened``: a list the worker is added to before it says hello, for the
    caller to close."""
    worker = RawWorker(address)
    if opened is not None:
        opened.append(worker)
    await worker.hello(worker_id=worker_id, capacity=1)

    async def looked() -> bool:
        record = await store.get_worker(worker_id)
        return record is not None and record.last_dequeue_time is not None

    await until(looked, timeout=30, what=f"{worker_id} looking at the empty queue")
    return worker
