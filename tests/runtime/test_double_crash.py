"""An attempt never stays RUNNING forever after the runner and then agl-server are SIGKILLed.

When a runner dies, its session first records the worker as disconnected and then gives up its
attempts; a server killed between those two writes used to leave the attempt RUNNING for good
(with no timeouts configured), since recovery after the restart only looked at workers recorded
as connected. Recovery now starts from the active attempts.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.store_surgery import surgery

from agl_core.client import GrpcStore
from agl_core.proto import types_pb2 as t
from agl_core.types import AttemptStatus, RolloutStatus
from agl_core.types.values import from_struct, to_struct
from agl_server.process import ServerProcess

HOLDING_WORKER = Path(__file__).parents[1] / "support" / "holding_worker.py"
BOUND = 60.0  # generous: the machine may be loaded


async def _start_and_hold(tmp_path: Path) -> tuple[ServerProcess, subprocess.Popen[str]]:
    """A server with one rollout (no timeouts, one attempt) held RUNNING by a worker process."""
    env = {**os.environ, "AGL_RUNNER_RECONNECT_GRACE": "0.3"}
    server = ServerProcess(tmp_path / "data", env=env, log_path=tmp_path / "server.log").start()
    async with GrpcStore(server.address) as store:
        await store.enqueue_rollout("task", rollout_id="task")
    runner = subprocess.Popen(
        [sys.executable, str(HOLDING_WORKER), server.address, "w-crash"], stdout=subprocess.PIPE, text=True
    )
    assert runner.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(runner.stdout.readline), BOUND)
    assert line.startswith("running task "), line
    return server, runner


async def _assert_given_up(server: ServerProcess) -> None:
    async with GrpcStore(server.address) as store:
        [rollout] = await store.wait_for_rollouts(["task"], timeout=BOUND)
        assert rollout.status == RolloutStatus.FAILED, server.log_tail()
        assert rollout.attempt is not None and rollout.attempt.status == AttemptStatus.UNRESPONSIVE


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.01, 0.05, 0.3])
async def test_runner_then_server_killed_at_varying_delays(tmp_path: Path, delay: float) -> None:
    server, runner = await _start_and_hold(tmp_path)
    try:
        runner.kill()
        # Not synchronisation: the delay decides how far the server gets in closing the session
        # (nothing, the worker record only, or both writes) before it dies too.
        await asyncio.sleep(delay)
        server.kill()
        runner.wait()
        server.restart()
        await _assert_given_up(server)
    finally:
        runner.kill()
        server.stop()


async def test_worker_recorded_disconnected_with_its_attempt_still_running(tmp_path: Path) -> None:
    """The exact state of the crash window, made on purpose: the record says disconnected, the
    attempt is RUNNING."""
    server, runner = await _start_and_hold(tmp_path)
    try:
        server.kill()  # the session never closes: the attempt stays RUNNING
        runner.kill()
        runner.wait()
        with surgery(tmp_path / "data") as tx:
            worker = tx.find_worker("w-crash")
            assert worker is not None and from_struct(worker.heartbeat_stats)["connected"] is True
            # What WorkSession.close() writes first.
            worker.heartbeat_stats.CopyFrom(to_struct({**from_struct(worker.heartbeat_stats), "connected": False}))
            worker.status = t.WORKER_STATUS_UNKNOWN
            tx.put_worker(worker)
            record = tx.rollout("task")
            assert tx.latest_attempt(record).status == t.ATTEMPT_STATUS_RUNNING  # type: ignore[union-attr]
        server.restart()
        await _assert_given_up(server)
        assert "did not reconnect after the restart (w-crash)" in server.log_tail(50)
    finally:
        server.stop()
