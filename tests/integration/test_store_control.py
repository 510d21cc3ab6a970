"""Store semantics: waiting for and watching rollouts, cancellation, manual requeue and retry, and
updates; run against LmdbStore in-process and GrpcStore talking to a real agl-server. Tests wait
for the store's own signals with generous upper bounds, never sleep to synchronise."""

from __future__ import annotations

import asyncio
import time

import pytest
from store_steps import BOUND, claim, wait_terminal

from agl_core import FailedPreconditionError, LightningStore, NotFoundError, RolloutConfig
from agl_core.types import RolloutStatus

# --- waiting and watching --------------------------------------------------------------------------


async def test_wait_for_rollouts_wakes_on_time_and_times_out(store: LightningStore) -> None:
    a = await store.start_rollout("a")
    b = await store.start_rollout("b")
    started = time.monotonic()
    assert await store.wait_for_rollouts([a.rollout_id, b.rollout_id], timeout=0.3) == []
    assert time.monotonic() - started >= 0.25

    waiter = asyncio.create_task(store.wait_for_rollouts([a.rollout_id, b.rollout_id], timeout=BOUND))
    await store.update_attempt(a.rollout_id, "latest", status="succeeded")
    await store.update_attempt(b.rollout_id, "latest", status="failed")
    done = await asyncio.wait_for(waiter, BOUND / 2)
    assert {r.rollout_id: r.status for r in done} == {a.rollout_id: "succeeded", b.rollout_id: "failed"}
    # An unknown id no longer fails the wait (issue 11, item 7): it is simply never finished.
    assert await store.wait_for_rollouts(["ro-unknown", a.rollout_id], timeout=0.1) == done[:1]


async def test_watch_filters_and_resumes(store: LightningStore) -> None:
    a = await store.enqueue_rollout("a")
    b = await store.enqueue_rollout("b")
    seen = []
    async with asyncio.timeout(BOUND):
        async for event in store.watch_rollouts(rollout_ids=[b.rollout_id], after_event_id=0):
            seen.append(event)
            break
    assert seen[0].rollout_id == b.rollout_id and seen[0].new_status == RolloutStatus.QUEUING

    async def next_terminal(after: int):  # type: ignore[no-untyped-def]
        async for event in store.watch_rollouts(status_in=["succeeded", "cancelled"], after_event_id=after):
            return event
        return None

    watcher = asyncio.create_task(next_terminal(seen[0].event_id))
    await store.update_rollout(a.rollout_id, status="cancelled")
    event = await asyncio.wait_for(watcher, BOUND)
    assert event is not None and event.rollout_id == a.rollout_id and event.new_status == RolloutStatus.CANCELLED


async def test_watch_from_now_sees_only_new_changes(store: LightningStore) -> None:
    await store.enqueue_rollout("old")
    async with store.watch_rollouts() as watch:
        assert watch.last_event_id == 1  # subscribed: the log holds the old rollout's event
        new = await store.enqueue_rollout("new")
        event = await asyncio.wait_for(anext(watch), BOUND)
    assert event.rollout_id == new.rollout_id and event.event_id == 2


# --- cancellation and manual control ----------------------------------------------------------------


async def test_cancellation(store: LightningStore) -> None:
    queued = await store.enqueue_rollout("never runs")
    cancelled = await store.update_rollout(queued.rollout_id, status="cancelled")
    assert cancelled.status == RolloutStatus.CANCELLED and cancelled.end_time is not None
    assert await store.dequeue_rollout() is None

    running = await store.start_rollout("stopped mid-way")
    await store.update_rollout(running.rollout_id, status="cancelled")
    await store.update_attempt(running.rollout_id, "latest", status="succeeded")  # the worker finishes anyway
    assert (await store.get_rollout(running.rollout_id)).status == RolloutStatus.CANCELLED  # type: ignore[union-attr]
    with pytest.raises(FailedPreconditionError, match="terminal rollouts keep their status"):
        await store.update_rollout(running.rollout_id, status="running")
    with pytest.raises(FailedPreconditionError):
        await store.start_attempt(running.rollout_id)


async def test_manual_requeue_and_manual_retry(store: LightningStore) -> None:
    queued = await store.enqueue_rollout("x")
    await claim(store)
    await store.update_rollout(queued.rollout_id, status="queuing")
    again = await claim(store)
    assert again.attempt.sequence_id == 2
    await store.update_attempt(queued.rollout_id, "latest", status="failed")
    assert (await wait_terminal(store, queued.rollout_id)).status == RolloutStatus.FAILED
    # A terminal rollout keeps its one terminal status: no manual retry (issue 11, item 6).
    with pytest.raises(FailedPreconditionError, match="gets no new attempt"):
        await store.start_attempt(queued.rollout_id, worker_id="w")
    # A rollout that is not terminal can be retried by hand: the new attempt supersedes the old.
    running = await store.start_rollout("y")
    retried = await store.start_attempt(running.rollout_id, worker_id="w")
    assert retried.status == RolloutStatus.PREPARING and retried.end_time is None
    assert retried.attempt is not None and retried.attempt.sequence_id == 2


async def test_update_rollout_fields(store: LightningStore) -> None:
    queued = await store.enqueue_rollout({"v": 1})
    updated = await store.update_rollout(
        queued.rollout_id,
        input={"v": 2},
        mode="val",
        resources_id="rs-x",
        metadata={"k": "v"},
        config=RolloutConfig(timeout_seconds=5, max_attempts=2, retry_condition=["timeout"]),
    )
    assert updated.input == {"v": 2} and updated.mode == "val" and updated.resources_id == "rs-x"
    assert updated.metadata == {"k": "v"} and updated.config.max_attempts == 2
    assert updated.status == RolloutStatus.QUEUING
    with pytest.raises(NotFoundError):
        await store.update_rollout("ro-missing", status="cancelled")
