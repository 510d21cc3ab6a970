"""A rollout reaches exactly one terminal status, and the event log says so once.

StartAttempt on a terminal rollout is refused (FAILED_PRECONDITION); before, a FAILED rollout got
a new attempt and WatchRollouts then showed FAILED and later SUCCEEDED for the same rollout.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest

from agl_core.client import GrpcStore
from agl_core.errors import FailedPreconditionError
from agl_core.proto import store_pb2 as s
from agl_core.proto import store_pb2_grpc
from agl_core.types import RolloutStatus
from agl_server.process import ServerProcess

TERMINAL = {RolloutStatus.FAILED, RolloutStatus.SUCCEEDED, RolloutStatus.CANCELLED}
BOUND = 60.0  # generous: the machine may be loaded


async def test_terminal_rollouts_get_no_new_attempt_and_one_terminal_event(server: ServerProcess) -> None:
    async with GrpcStore(server.address) as store:
        failed = await store.start_rollout("fails", rollout_id="failed")
        await store.update_attempt("failed", "latest", status="failed")
        await store.start_rollout("succeeds", rollout_id="succeeded")
        await store.update_attempt("succeeded", "latest", status="succeeded")
        await store.enqueue_rollout("cancelled", rollout_id="cancelled")
        await store.update_rollout("cancelled", status="cancelled")
        # A manual retry of a rollout that is still running is allowed; its old attempt is superseded.
        await store.start_rollout("retried", rollout_id="retried")
        retried = await store.start_attempt("retried", worker_id="w")
        assert retried.attempt is not None and retried.attempt.sequence_id == 2

        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = store_pb2_grpc.LightningStoreServiceStub(channel)
            for rollout_id in ("failed", "succeeded", "cancelled"):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.StartAttempt(s.StartAttemptRequest(rollout_id=rollout_id, worker_id="w"))
                assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert "gets no new attempt" in (info.value.details() or "")
        # The scenario of the issue: the late success of the failed rollout's attempt changes nothing.
        with pytest.raises(FailedPreconditionError):
            await store.update_attempt("failed", failed.attempt.attempt_id, status="succeeded")  # type: ignore[union-attr]
        await store.update_attempt("retried", "latest", status="succeeded")
        await store.update_attempt("retried", "latest", status="succeeded")  # a resent report

        last = (await store.backend.get_stats(s.GetStatsRequest())).last_event_id
        terminal: Counter[str] = Counter()
        statuses: dict[str, int] = {}

        async def read_all() -> None:
            async with store.watch_rollouts(after_event_id=0) as watch:
                async for event in watch:
                    if event.new_status in TERMINAL:
                        terminal[event.rollout_id] += 1
                        statuses[event.rollout_id] = event.new_status.value
                    if event.event_id >= last:
                        return

        await asyncio.wait_for(read_all(), BOUND)
    assert terminal == {"failed": 1, "succeeded": 1, "cancelled": 1, "retried": 1}
    assert statuses == {"failed": "failed", "succeeded": "succeeded", "cancelled": "cancelled", "retried": "succeeded"}
