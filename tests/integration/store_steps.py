"""Steps the store semantics tests share (test_store_*.py in this folder): claim a rollout, add a
span to its attempt, wait for a rollout to end, each under one upper bound."""

from __future__ import annotations

from agl_core import LightningStore, new_span
from agl_core.types import Rollout

BOUND = 10.0  # upper bound on any wait in these tests; reaching it means a bug


async def claim(store: LightningStore, worker_id: str = "w1", wait: float = BOUND) -> Rollout:
    rollout = await store.dequeue_rollout(worker_id=worker_id, wait=wait)
    assert rollout is not None, "expected work in the queue"
    assert rollout.attempt is not None
    return rollout


async def span_for(store: LightningStore, rollout: Rollout, name: str = "step", **attrs: object) -> None:
    assert rollout.attempt is not None
    result = await store.add_span(
        new_span(name, rollout_id=rollout.rollout_id, attempt_id=rollout.attempt.attempt_id, attributes=attrs)
    )
    assert result.accepted == 1


async def wait_terminal(store: LightningStore, rollout_id: str) -> Rollout:
    done = await store.wait_for_rollouts([rollout_id], timeout=BOUND)
    assert len(done) == 1, f"rollout {rollout_id} did not finish within {BOUND}s"
    return done[0]
