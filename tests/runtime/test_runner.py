"""The Runner against both stores, embedded LMDB (claiming directly) and agl-server (work pushed on
the Work stream): capacity, training and validation modes, stopping and cancelling, and the Work
stream across a server restart."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from runner_runs import Setup, run_all
from store_waits import wait_status

from agl_core.client import GrpcStore
from agl_core.litagent import LitAgent, rollout
from agl_core.runner import Runner, WorkStreamSource
from agl_core.types import (
    AttemptStatus,
    Rollout,
    RolloutConfig,
    RolloutStatus,
)
from agl_server.process import ServerProcess

# --- concurrency, modes, stopping ------------------------------------------------------------------


class Gate:
    """Lets agents wait until ``needed`` of them are inside at once."""

    def __init__(self, needed: int) -> None:
        self.needed, self.inside, self.full = needed, 0, asyncio.Event()

    async def enter(self) -> None:
        self.inside += 1
        if self.inside >= self.needed:
            self.full.set()
        await asyncio.wait_for(self.full.wait(), 10)


async def test_capacity_runs_attempts_concurrently(setup: Setup) -> None:
    gate = Gate(3)

    @rollout
    async def together(task: Any) -> float:
        await gate.enter()  # times out unless three attempts run at the same time
        return 1.0

    results = await run_all(setup, together, [1, 2, 3], capacity=3)
    assert [r.status for r in results] == [RolloutStatus.SUCCEEDED] * 3


class ModeAgent(LitAgent[Any]):
    async def training_rollout_async(self, task: Any, resources: Any, rollout: Rollout) -> float:
        return 1.0

    async def validation_rollout_async(self, task: Any, resources: Any, rollout: Rollout) -> float:
        return 0.5


async def test_mode_picks_training_or_validation_rollout(setup: Setup) -> None:
    train = await setup.store.enqueue_rollout("t", mode="train")
    val = await setup.store.enqueue_rollout("v", mode="val")
    runner = Runner(ModeAgent(), store=setup.store, source=setup.source(), max_rollouts=2)
    await asyncio.wait_for(runner.run(), 30)
    assert (await setup.store.get_rollout(train.rollout_id)).attempt.metadata["reward"] == 1.0
    assert (await setup.store.get_rollout(val.rollout_id)).attempt.metadata["reward"] == 0.5


async def test_stop_drains_and_cancel_gives_attempts_up(setup: Setup) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    @rollout
    async def waits(task: Any) -> float:
        started.set()
        await release.wait()
        return 1.0

    config = RolloutConfig(max_attempts=2, retry_condition=["unresponsive"])
    # Stop while an attempt runs: it finishes before the runner leaves.
    first = await setup.store.enqueue_rollout("a", config=config)
    stop = asyncio.Event()
    serving = asyncio.create_task(Runner(waits, store=setup.store, source=setup.source("w1")).run(stop))
    await asyncio.wait_for(started.wait(), 10)
    stop.set()
    release.set()
    stats = await asyncio.wait_for(serving, 30)
    assert stats.succeeded == 1
    assert (await setup.store.get_rollout(first.rollout_id)).status == RolloutStatus.SUCCEEDED

    # Cancel while an attempt runs: it is given up and goes back to the queue.
    release.clear()
    started.clear()
    second = await setup.store.enqueue_rollout("b", config=config)
    serving = asyncio.create_task(Runner(waits, store=setup.store, source=setup.source("w2")).run())
    await asyncio.wait_for(started.wait(), 10)
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    # Embedded, the runner gives the attempt up itself; over the Work stream, the server does when
    # the stream breaks: wait for it on the event log.
    await wait_status(setup.store, second.rollout_id, RolloutStatus.REQUEUING)
    rollout_now = await setup.store.get_rollout(second.rollout_id)
    assert rollout_now.status == RolloutStatus.REQUEUING
    assert rollout_now.attempt.status == AttemptStatus.UNRESPONSIVE
    assert (await setup.store.get_worker("w2")).status == "unknown"


async def test_work_stream_survives_a_server_restart(data_dir: Path) -> None:
    # A short grace: if the kill lands between the claim's commit and its assignment leaving the
    # server, the worker comes back without the attempt and recovery puts the rollout back in the
    # queue (runner_service/recovery.py) within the wait below.
    env = {**os.environ, "AGL_RUNNER_RECONNECT_GRACE": "1"}
    server = ServerProcess(data_dir, env=env, log_path=data_dir.parent / "server.log").start()
    store = GrpcStore(server.address)
    release = asyncio.Event()

    @rollout
    async def waits(task: Any) -> float:
        await release.wait()
        return 1.0

    try:
        rollout_ = await store.enqueue_rollout("survivor")
        runner = Runner(waits, store=store, source=WorkStreamSource(server.address, worker_id="steady"))
        stop = asyncio.Event()
        serving = asyncio.create_task(runner.run(stop))

        async def running() -> None:
            async for event in store.watch_rollouts(rollout_ids=[rollout_.rollout_id], after_event_id=0):
                if event.new_status == RolloutStatus.RUNNING:
                    return

        await asyncio.wait_for(running(), 10)
        server.kill()  # a crash: the attempt is RUNNING in the store, the agent still works on it
        server.restart()
        release.set()
        [done] = await store.wait_for_rollouts([rollout_.rollout_id], timeout=30)
        assert done.status == RolloutStatus.SUCCEEDED and done.attempt.metadata["reward"] == 1.0
        assert [a.status for a in await store.query_attempts(rollout_.rollout_id)] == [AttemptStatus.SUCCEEDED]
        stop.set()
        await asyncio.wait_for(serving, 30)
    finally:
        await store.close()
        server.stop()
