"""After agl-server restarts, a worker that comes back says which attempts it still runs; the ones
of an earlier server life the store gives to it and it did not list are not running anywhere
(runner_service/recovery.py). The common case: a claim the server committed just before it died,
whose assignment never left it. Claimed RUNNING (a worker that starts on assignment), it looked
running to everyone and stayed so for good.

Here the three states are made on purpose with DequeueRollout(running=true) before a kill: an
attempt never touched goes back to the queue as if never claimed; one touched (a span) is marked
UNRESPONSIVE; one the worker lists stays RUNNING."""

from __future__ import annotations

import os
from pathlib import Path

from support.raw_worker import RawWorker
from support.waits import until

from agl_core import new_span
from agl_core.client import GrpcStore
from agl_core.proto import runner_pb2 as r
from agl_core.types import AttemptStatus, RolloutStatus
from agl_server.process import ServerProcess

BOUND = 60.0  # generous: the machine may be loaded


async def test_attempts_a_reconnected_worker_does_not_list_are_put_back_or_given_up(tmp_path: Path) -> None:
    env = {**os.environ, "AGL_RUNNER_RECONNECT_GRACE": "0.5"}
    server = ServerProcess(tmp_path / "data", env=env, log_path=tmp_path / "server.log").start()
    try:
        async with GrpcStore(server.address) as store:
            attempts = {}
            for name in ("lost", "touched", "listed"):
                await store.enqueue_rollout(name, rollout_id=name)
                claimed = await store.dequeue_rollout(worker_id="w", running=True)
                assert claimed is not None and claimed.rollout_id == name and claimed.attempt is not None
                assert claimed.attempt.status == AttemptStatus.RUNNING
                attempts[name] = claimed.attempt.attempt_id
            await store.add_span(new_span("work", rollout_id="touched", attempt_id=attempts["touched"]))
        server.kill()  # a crash: whatever the worker had got, the store says it holds all three
        server.restart()

        worker = RawWorker(server.address)
        try:
            listed = r.AttemptRef(rollout_id="listed", attempt_id=attempts["listed"])
            # Capacity 0: the rollout put back stays in the queue, where the test can see it.
            await worker.hello(worker_id="w", capacity=0, active_attempts=[listed], start_on_assignment=True)
            async with GrpcStore(server.address) as store:

                async def recovered() -> bool:
                    lost = await store.get_rollout("lost")
                    touched = await store.query_attempts("touched")
                    return (
                        lost is not None
                        and lost.status == RolloutStatus.QUEUING
                        and touched[0].status == AttemptStatus.UNRESPONSIVE
                    )

                await until(recovered, timeout=BOUND, what="recovery of the attempts the worker did not list")
                # Put back as if never claimed: no attempt left, no retry counted.
                assert list(await store.query_attempts("lost")) == []
                [kept] = await store.query_attempts("listed")
                assert kept.attempt_id == attempts["listed"] and kept.status == AttemptStatus.RUNNING
                listed_rollout = await store.get_rollout("listed")
                assert listed_rollout is not None and listed_rollout.status == RolloutStatus.RUNNING
            assert "put back in the queue if never touched, else marked unresponsive" in server.log_path.read_text()
        finally:
            await worker.channel.close()
    finally:
        server.stop()
