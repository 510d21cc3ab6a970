"""A Work-stream worker process that takes one attempt, reports it RUNNING and holds it forever.

``python holding_worker.py ADDRESS WORKER_ID`` prints ``running <rollout_id> <attempt_id>`` once
the store has acknowledged the RUNNING report, then heartbeats until it is killed. Tests SIGKILL
it to play a runner that crashes mid-attempt.
"""

from __future__ import annotations

import asyncio
import sys

import grpc

from agl_core.proto import runner_pb2 as r
from agl_core.proto import runner_pb2_grpc
from agl_core.proto import types_pb2 as t


async def main(address: str, worker_id: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        call = runner_pb2_grpc.RunnerServiceStub(channel).Work()
        await call.write(r.WorkRequest(hello=r.WorkerHello(worker_id=worker_id, capacity=1)))
        reported = False
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                return
            kind = response.WhichOneof("kind")
            if kind == "assignment" and not reported:
                rollout = response.assignment.rollout
                report = r.AttemptReport(
                    rollout_id=rollout.rollout_id,
                    attempt_id=rollout.attempt.attempt_id,
                    status=t.ATTEMPT_STATUS_RUNNING,
                )
                await call.write(r.WorkRequest(report=report))
                reported = True
            elif kind == "report_ack":
                print("running", response.report_ack.rollout_id, response.report_ack.attempt_id, flush=True)
                asyncio.get_running_loop().create_task(_heartbeat(call))


async def _heartbeat(call: grpc.aio.StreamStreamCall) -> None:
    while True:
        await call.write(r.WorkRequest(heartbeat=r.WorkerHeartbeat()))
        await asyncio.sleep(1.0)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
