"""Store semantics: batch enqueues, client-chosen ids, rollout queries, workers, large batches and
claims whose caller left; run against LmdbStore in-process and GrpcStore talking to a real agl-server."""

from __future__ import annotations

import asyncio

import pytest
from store_steps import BOUND, claim
from support.waits import until

from agl_core import AlreadyExistsError, BatchError, InvalidArgumentError, LightningStore, RolloutConfig
from agl_core.types import RolloutStatus, WorkerStatus

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
        async def claim_queued() -> bool:
            return bool(backend._writer._pending)  # type: ignore[union-attr]

        await until(claim_queued, timeout=BOUND, what="the claim queued behind the held writer")
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
