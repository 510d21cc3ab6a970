"""Store semantics, run against LmdbStore in-process and GrpcStore talking to a real agl-server.

Timing-based rules (timeouts, unresponsiveness) use short deadlines; tests wait for the store's
own signals (wait_for_rollouts, long-poll dequeue, watch) with generous upper bounds, never sleep
to synchronise.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from support.waits import until_polling

from agl_core import (
    AlreadyExistsError,
    BatchError,
    FailedPreconditionError,
    InvalidArgumentError,
    LightningStore,
    NotFoundError,
    PromptTemplate,
    RolloutConfig,
    new_span,
)
from agl_core.types import LLM, AttemptStatus, Rollout, RolloutStatus, WorkerStatus

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


# --- spans -----------------------------------------------------------------------------------------


async def test_duplicate_span_ids_are_ignored(store: LightningStore) -> None:
    rollout = await store.start_rollout("x")
    span = new_span("once", rollout_id=rollout.rollout_id, attempt_id=rollout.attempt.attempt_id)  # type: ignore[union-attr]
    first = await store.add_spans([span])
    again = await store.add_spans([span, span])
    assert (first.accepted, first.duplicates) == (1, 0)
    assert (again.accepted, again.duplicates) == (0, 2)
    assert [s.name for s in await store.query_spans(rollout.rollout_id)] == ["once"]


async def test_sequence_ids_are_monotonic_per_rollout(store: LightningStore) -> None:
    rollout = await store.start_rollout("x")
    attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
    await store.add_spans([new_span(f"s{i}", rollout_id=rollout.rollout_id, attempt_id=attempt_id) for i in range(3)])
    reserved = await store.next_sequence_ids(rollout.rollout_id, 5)
    assert list(reserved) == [4, 5, 6, 7, 8]
    await store.add_spans([new_span("own", rollout_id=rollout.rollout_id, attempt_id=attempt_id, sequence_id=20)])
    await store.add_spans([new_span("after", rollout_id=rollout.rollout_id, attempt_id=attempt_id)])
    spans = await store.query_spans(rollout.rollout_id)
    assert [(s.name, s.sequence_id) for s in spans] == [("s0", 1), ("s1", 2), ("s2", 3), ("own", 20), ("after", 21)]
    tail = await store.query_spans(rollout.rollout_id, after_sequence_id=3)
    assert [s.name for s in tail] == ["own", "after"]
    other = await store.start_rollout("y")
    assert list(await store.next_sequence_ids(other.rollout_id)) == [1]


async def test_spans_are_returned_with_their_attributes_and_in_chunks(store: LightningStore) -> None:
    rollout = await store.start_rollout("x")
    attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
    spans = [
        new_span("big", rollout_id=rollout.rollout_id, attempt_id=attempt_id, attributes={"i": i, "pad": "x" * 5000})
        for i in range(700)
    ]
    result = await store.add_spans(spans)
    assert result.accepted == 700
    back = await store.query_spans(rollout.rollout_id, attempt_id)
    assert [s.attributes[0].value.int_value for s in back] == list(range(700))
    assert len(await store.query_spans(rollout.rollout_id, limit=300)) == 300


async def test_unplaceable_spans_are_rejected_one_by_one(store: LightningStore) -> None:
    rollout = await store.start_rollout("x")
    good = new_span("ok", rollout_id=rollout.rollout_id, attempt_id=rollout.attempt.attempt_id)  # type: ignore[union-attr]
    unknown_rollout = new_span("a", rollout_id="ro-missing", attempt_id="at-missing")
    unknown_attempt = new_span("b", rollout_id=rollout.rollout_id, attempt_id="at-missing")
    no_ids = new_span("c", rollout_id="", attempt_id="")
    result = await store.add_spans([unknown_rollout, good, unknown_attempt, no_ids])
    assert result.accepted == 1
    assert [i for i, _ in result.rejected] == [0, 2, 3]
    assert isinstance(result.rejected[0][1], NotFoundError) and "ro-missing" in str(result.rejected[0][1])
    assert isinstance(result.rejected[1][1], NotFoundError) and "at-missing" in str(result.rejected[1][1])
    assert isinstance(result.rejected[2][1], InvalidArgumentError) and "rollout_id is required" in str(
        result.rejected[2][1]
    )
    with pytest.raises(NotFoundError):
        await store.add_span(unknown_rollout)


# --- resources -------------------------------------------------------------------------------------


async def test_resources_versions_and_latest(store: LightningStore) -> None:
    assert await store.get_latest_resources() is None
    first = await store.add_resources({"prompt": PromptTemplate(template="Q: {q}")})
    assert first.version == 1
    assert (await store.get_latest_resources()).resources_id == first.resources_id  # type: ignore[union-attr]
    llm = LLM(endpoint="http://127.0.0.1:9/v1", model="m", sampling_parameters={"temperature": 0.5})
    second = await store.add_resources({"llm": llm}, resources_id="main")
    assert second.resources_id == "main"
    updated = await store.update_resources("main", {"llm": llm, "prompt": PromptTemplate(template="A: {q}")})
    assert updated.version == 2 and updated.update_time >= updated.create_time
    latest = await store.get_latest_resources()
    assert latest is not None and latest.resources_id == "main" and latest.version == 2
    assert latest.resources["llm"] == llm
    assert (await store.get_resources(first.resources_id)).resources["prompt"].template == "Q: {q}"  # type: ignore[union-attr]
    assert await store.get_resources("nope") is None
    with pytest.raises(AlreadyExistsError):
        await store.add_resources({"p": PromptTemplate(template="x")}, resources_id="main")
    created = await store.update_resources("fresh", {"p": PromptTemplate(template="y")})
    assert created.version == 1
    page = await store.query_resources()
    assert [r.resources_id for r in page] == [first.resources_id, "main", "fresh"] and page.total == 3
    assert [r.resources_id for r in await store.query_resources(sort_by="version", order="desc", limit=1)] == ["main"]


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


# --- batches, ids, queries --------------------------------------------------------------------------


async def test_batch_enqueue_reports_failed_items_and_keeps_the_rest(store: LightningStore) -> None:
    with pytest.raises(BatchError) as info:
        await store.enqueue_rollouts(
            [
                {"input": 1},
                {"input": 2, "config": RolloutConfig(timeout_seconds=-1)},
                {"input": 3},
            ]
        )
    error = info.value
    assert [i for i, _ in error.errors] == [1]
    assert isinstance(error.errors[0][1], InvalidArgumentError) and "timeout_seconds" in str(error.errors[0][1])
    assert [r.input if r else None for r in error.results] == [1, None, 3]
    assert (await store.query_rollouts()).total == 2


async def test_client_chosen_ids_make_enqueue_idempotent(store: LightningStore) -> None:
    first = await store.enqueue_rollout({"q": 1}, rollout_id="task-1")
    again = await store.enqueue_rollout({"q": 1}, rollout_id="task-1")
    assert again.rollout_id == first.rollout_id == "task-1"
    assert (await store.query_rollouts()).total == 1
    with pytest.raises(BatchError) as info:
        await store.enqueue_rollout({"q": 2}, rollout_id="task-1")
    assert isinstance(info.value.errors[0][1], AlreadyExistsError)


async def test_query_rollouts_filters_sorts_and_pages(store: LightningStore) -> None:
    ids = [(await store.enqueue_rollout(i, mode="train" if i % 2 else "val")).rollout_id for i in range(6)]
    await claim(store)  # ids[0] -> preparing
    await store.update_rollout(ids[1], status="cancelled")
    page = await store.query_rollouts(status_in=["queuing"], limit=2, offset=1)
    assert page.total == 4 and [r.rollout_id for r in page] == ids[3:5]
    assert [r.rollout_id for r in await store.query_rollouts(order="desc", limit=2)] == [ids[5], ids[4]]
    assert {r.rollout_id for r in await store.query_rollouts(mode="train")} == {ids[1], ids[3], ids[5]}
    assert [r.rollout_id for r in await store.query_rollouts(rollout_id_in=[ids[4], ids[2]])] == [ids[2], ids[4]]
    assert (await store.query_rollouts(rollout_id_contains=ids[3][-6:])).total == 1
    by_status = await store.query_rollouts(status_in=["cancelled", "preparing"], sort_by="status")
    assert [r.status for r in by_status] == [RolloutStatus.PREPARING, RolloutStatus.CANCELLED]
    ended = await store.query_rollouts(sort_by="end_time")
    assert ended[0].rollout_id == ids[1]  # the only one with an end time sorts first


async def test_workers_follow_their_attempts(store: LightningStore) -> None:
    assert await store.dequeue_rollout(worker_id="idle-one") is None
    idle_one = await store.get_worker("idle-one")
    assert idle_one is not None and idle_one.status == WorkerStatus.IDLE and idle_one.last_dequeue_time is not None
    await store.enqueue_rollout("x")
    rollout = await claim(store, "busy-one")
    busy = await store.get_worker("busy-one")
    assert busy is not None and busy.status == WorkerStatus.BUSY
    assert busy.current_rollout_id == rollout.rollout_id and busy.last_dequeue_time is not None
    await store.update_attempt(rollout.rollout_id, "latest", status="succeeded")
    idle = await store.get_worker("busy-one")
    assert idle is not None and idle.status == WorkerStatus.IDLE and idle.current_attempt_id is None
    beat = await store.update_worker("busy-one", heartbeat_stats={"load": 0.5})
    assert beat.heartbeat_stats == {"load": 0.5} and beat.last_heartbeat_time is not None
    page = await store.query_workers(status_in=["idle"])
    assert "busy-one" in {w.worker_id for w in page}
    assert await store.get_worker("never-seen") is None


async def test_large_batches_are_split_and_keep_their_order(store: LightningStore) -> None:
    store.ENQUEUE_CHUNK = 7  # type: ignore[misc]
    with pytest.raises(BatchError) as info:
        await store.enqueue_rollouts(
            [{"input": i, "config": RolloutConfig(max_attempts=-1) if i in (3, 15) else None} for i in range(20)]
        )
    assert [i for i, _ in info.value.errors] == [3, 15]
    claimed = [r.input for r in await store.dequeue_rollouts(limit=50)]
    assert claimed == [i for i in range(20) if i not in (3, 15)]


async def test_a_claim_whose_caller_left_goes_back_to_the_queue(data_dir) -> None:  # type: ignore[no-untyped-def]
    """A worker that gives up on its long poll while its claim is being committed must not leave
    the rollout stuck in PREPARING with an attempt nobody runs."""
    import threading

    from agl_core import LmdbStore

    store = LmdbStore(data_dir)
    try:
        rollout = await store.enqueue_rollout("orphan?")
        backend = store.backend
        started, gate = threading.Event(), threading.Event()

        def hold(tx: object) -> None:  # holds the writer, so the claim queues behind it
            started.set()
            gate.wait(10)

        blocker = backend._write(hold)
        await asyncio.to_thread(started.wait, 10)
        poll = asyncio.create_task(store.dequeue_rollout(worker_id="quitter", wait=5))
        # The writer has no event for "an operation is queued"; check its queue under a deadline.
        async with asyncio.timeout(BOUND):
            while not backend._writer._pending:  # type: ignore[union-attr]  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        poll.cancel()
        gate.set()
        await blocker
        with pytest.raises(asyncio.CancelledError):
            await poll
        again = await store.dequeue_rollout(worker_id="stayer", wait=BOUND)
        assert again is not None and again.rollout_id == rollout.rollout_id
        assert again.attempt is not None and again.attempt.sequence_id == 1
        attempts = await store.query_attempts(rollout.rollout_id)
        assert attempts.total == 1 and attempts[0].worker_id == "stayer"
        quitter = await store.get_worker("quitter")
        assert quitter is not None and quitter.status == WorkerStatus.IDLE
    finally:
        await store.close()
