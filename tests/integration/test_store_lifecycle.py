"""Store semantics: a rollout's lifecycle, the queue, and retries on timeouts, unresponsiveness and
failures; run against LmdbStore in-process and GrpcStore talking to a real agl-server.

Timing-based rules (timeouts, unresponsiveness) use short deadlines; tests wait for the store's
own signals (wait_for_rollouts, long-poll dequeue, watch) with generous upper bounds, never sleep
to synchronise.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from store_steps import BOUND, claim, span_for, wait_terminal
from support.waits import until_polling

from agl_core import FailedPreconditionError, LightningStore, RolloutConfig
from agl_core.types import AttemptStatus, RolloutStatus, WorkerStatus

# --- lifecycle ---------------------------------------------------------------------------------------


async def test_full_lifecycle_with_events(store: LightningStore) -> None:
    queued = await store.enqueue_rollout({"question": "2+2", "n": 4}, mode="train", metadata={"source": "t"})
    assert queued.status == RolloutStatus.QUEUING
    assert queued.attempt is None and queued.end_time is None
    assert queued.input == {"question": "2+2", "n": 4}

    rollout = await claim(store)
    assert rollout.rollout_id == queued.rollout_id
    assert rollout.status == RolloutStatus.PREPARING
    assert rollout.attempt.sequence_id == 1 and rollout.attempt.status == AttemptStatus.PREPARING
    assert rollout.attempt.worker_id == "w1"

    await span_for(store, rollout, answer=4)
    running = await store.get_rollout(rollout.rollout_id)
    assert running is not None and running.status == RolloutStatus.RUNNING
    assert running.attempt is not None and running.attempt.status == AttemptStatus.RUNNING
    assert running.attempt.last_heartbeat_time is not None

    attempt = await store.update_attempt(rollout.rollout_id, rollout.attempt.attempt_id, status="succeeded")
    assert attempt.status == AttemptStatus.SUCCEEDED and attempt.end_time is not None
    done = await wait_terminal(store, rollout.rollout_id)
    assert done.status == RolloutStatus.SUCCEEDED and done.end_time is not None
    assert done.metadata == {"source": "t"} and done.mode == "train"

    events = [e async for e in _events(store, rollout.rollout_id, count=4)]
    assert [(e.old_status, e.new_status) for e in events] == [
        (None, RolloutStatus.QUEUING),
        (RolloutStatus.QUEUING, RolloutStatus.PREPARING),
        (RolloutStatus.PREPARING, RolloutStatus.RUNNING),
        (RolloutStatus.RUNNING, RolloutStatus.SUCCEEDED),
    ]
    assert events[-1].rollout.input == {"question": "2+2", "n": 4}
    assert events[-1].rollout.attempt is not None and events[-1].rollout.attempt.status == AttemptStatus.SUCCEEDED
    assert [e.event_id for e in events] == sorted(e.event_id for e in events)


async def _events(store: LightningStore, rollout_id: str, count: int):  # type: ignore[no-untyped-def]
    seen = 0
    async with asyncio.timeout(BOUND):
        async for event in store.watch_rollouts(rollout_ids=[rollout_id], after_event_id=0):
            yield event
            seen += 1
            if seen == count:
                return


async def test_start_rollout_bypasses_the_queue(store: LightningStore) -> None:
    started = await store.start_rollout({"x": 1}, worker_id="w9")
    assert started.status == RolloutStatus.PREPARING
    assert started.attempt is not None and started.attempt.sequence_id == 1
    assert started.attempt.worker_id == "w9"
    assert await store.dequeue_rollout() is None
    worker = await store.get_worker("w9")
    assert worker is not None and worker.status == WorkerStatus.BUSY
    assert worker.current_attempt_id == started.attempt.attempt_id


async def test_dequeue_is_fifo_and_claims_each_rollout_once(store: LightningStore) -> None:
    ids = [(await store.enqueue_rollout(i)).rollout_id for i in range(5)]
    claimed = [(await claim(store)).rollout_id for _ in range(5)]
    assert claimed == ids
    assert await store.dequeue_rollout() is None


async def test_dequeue_many(store: LightningStore) -> None:
    await store.enqueue_rollouts([{"input": i} for i in range(7)])
    first = await store.dequeue_rollouts(limit=5, worker_id="w")
    rest = await store.dequeue_rollouts(limit=5, worker_id="w")
    assert [r.input for r in first] == [0, 1, 2, 3, 4] and [r.input for r in rest] == [5, 6]
    assert all(r.attempt is not None for r in first + rest)


async def test_long_poll_dequeue_returns_empty_after_its_wait(store: LightningStore) -> None:
    started = time.monotonic()
    assert await store.dequeue_rollout(wait=0.3) is None
    assert time.monotonic() - started >= 0.25


async def test_long_poll_dequeue_wakes_when_work_arrives(store: LightningStore) -> None:
    waiting = asyncio.create_task(store.dequeue_rollout(worker_id="w", wait=BOUND))
    await until_polling(store, "w")  # the work must arrive while the poll waits
    queued = await store.enqueue_rollout("late task")
    got = await asyncio.wait_for(waiting, BOUND / 2)
    assert got is not None and got.rollout_id == queued.rollout_id


# --- retries, timeouts, heartbeats ------------------------------------------------------------------


async def test_timeout_retries_up_to_max_attempts_then_fails(store: LightningStore) -> None:
    config = RolloutConfig(timeout_seconds=0.3, max_attempts=3, retry_condition=["timeout"])
    queued = await store.enqueue_rollout("slow", config=config)
    sequences = []
    for _ in range(3):
        rollout = await claim(store)  # the watchdog requeues it on time; the long poll wakes up then
        sequences.append(rollout.attempt.sequence_id)
        await span_for(store, rollout)
    assert sequences == [1, 2, 3]
    done = await wait_terminal(store, queued.rollout_id)
    assert done.status == RolloutStatus.FAILED
    attempts = await store.query_attempts(queued.rollout_id)
    assert attempts.total == 3
    assert [a.status for a in attempts] == [AttemptStatus.TIMEOUT] * 3
    for attempt in attempts:
        assert attempt.end_time is not None and attempt.end_time - attempt.start_time >= 0.29
    statuses = [e.new_status async for e in _events(store, queued.rollout_id, count=10)]
    assert statuses.count(RolloutStatus.REQUEUING) == 2 and statuses[-1] == RolloutStatus.FAILED


async def test_unresponsive_attempt_is_retried_and_the_retry_can_succeed(store: LightningStore) -> None:
    config = RolloutConfig(unresponsive_seconds=0.3, max_attempts=2, retry_condition=["unresponsive"])
    queued = await store.enqueue_rollout("flaky", config=config)
    first = await claim(store, "w1")
    await span_for(store, first)  # then silence: no more heartbeats
    second = await claim(store, "w2")  # arrives once the watchdog marks the first unresponsive
    assert second.attempt.sequence_id == 2
    old = (await store.query_attempts(queued.rollout_id))[0]
    assert old.status == AttemptStatus.UNRESPONSIVE
    w1 = await store.get_worker("w1")
    assert w1 is not None and w1.status == WorkerStatus.UNKNOWN
    await store.update_attempt(queued.rollout_id, second.attempt.attempt_id, status="succeeded")
    assert (await wait_terminal(store, queued.rollout_id)).status == RolloutStatus.SUCCEEDED


async def test_heartbeats_keep_an_attempt_alive(store: LightningStore) -> None:
    config = RolloutConfig(unresponsive_seconds=0.5, retry_condition=["unresponsive"], max_attempts=2)
    queued = await store.enqueue_rollout("busy", config=config)
    rollout = await claim(store)
    deadline = time.monotonic() + 1.5  # three unresponsive periods, covered by heartbeats
    while time.monotonic() < deadline:
        await span_for(store, rollout)
        await asyncio.sleep(0.1)  # the agent's pace of work, not synchronisation
    current = await store.get_rollout(queued.rollout_id)
    assert current is not None and current.status == RolloutStatus.RUNNING
    assert current.attempt is not None and current.attempt.sequence_id == 1


async def test_failure_not_in_retry_condition_fails_at_once(store: LightningStore) -> None:
    config = RolloutConfig(max_attempts=5, retry_condition=["timeout"])
    queued = await store.enqueue_rollout("x", config=config)
    rollout = await claim(store)
    await store.update_attempt(queued.rollout_id, "latest", status="failed")
    done = await wait_terminal(store, queued.rollout_id)
    assert done.status == RolloutStatus.FAILED
    assert (await store.query_attempts(queued.rollout_id)).total == 1
    assert rollout.attempt.attempt_id == done.attempt.attempt_id  # type: ignore[union-attr]


async def test_failed_attempt_is_retried_when_the_condition_allows(store: LightningStore) -> None:
    config = RolloutConfig(max_attempts=2, retry_condition=["failed"])
    queued = await store.enqueue_rollout("x", config=config)
    await claim(store)
    await store.update_attempt(queued.rollout_id, "latest", status="failed")
    current = await store.get_rollout(queued.rollout_id)
    assert current is not None and current.status == RolloutStatus.REQUEUING
    second = await claim(store)
    await store.update_attempt(queued.rollout_id, second.attempt.attempt_id, status="failed")
    assert (await wait_terminal(store, queued.rollout_id)).status == RolloutStatus.FAILED


async def test_stale_attempt_span_is_stored_but_changes_no_status(store: LightningStore) -> None:
    config = RolloutConfig(timeout_seconds=0.3, max_attempts=2, retry_condition=["timeout"])
    queued = await store.enqueue_rollout("x", config=config)
    first = await claim(store)
    second = await claim(store)  # after the first timed out
    await span_for(store, second, "new")
    await span_for(store, first, "late")  # the first attempt's worker was only slow
    current = await store.get_rollout(queued.rollout_id)
    assert current is not None and current.status == RolloutStatus.RUNNING
    assert current.attempt is not None and current.attempt.attempt_id == second.attempt.attempt_id
    attempts = await store.query_attempts(queued.rollout_id)
    assert attempts[0].status == AttemptStatus.TIMEOUT
    late = await store.query_spans(queued.rollout_id, first.attempt.attempt_id)
    assert [s.name for s in late] == ["late"]
    assert [s.name for s in await store.query_spans(queued.rollout_id, "latest")] == ["new"]
    with pytest.raises(FailedPreconditionError, match="already timeout"):
        await store.update_attempt(queued.rollout_id, first.attempt.attempt_id, status="succeeded")
    assert (await store.get_rollout(queued.rollout_id)).status == RolloutStatus.RUNNING  # type: ignore[union-attr]
