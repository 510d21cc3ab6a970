"""Under concurrency: every rollout is claimed by one worker at a time and reaches exactly one
terminal status, retries and late reports included."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random

from support.waits import until_polling

from agl_core import FailedPreconditionError, LightningStore, RolloutConfig, new_span
from agl_core.client import GrpcStore
from agl_core.types import RolloutStatus
from agl_server.process import ServerProcess


async def _drain_queue(store: LightningStore, worker_id: str, claimed: list[tuple[str, int]]) -> None:
    rng = random.Random(worker_id)
    while rollouts := await store.dequeue_rollouts(limit=rng.randint(1, 3), worker_id=worker_id, wait=0.3):
        claimed.extend((r.rollout_id, r.attempt.sequence_id) for r in rollouts)  # type: ignore[union-attr]


async def test_concurrent_clients_never_get_the_same_rollout(server: ServerProcess) -> None:
    clients = [GrpcStore(server.address) for _ in range(8)]
    try:
        ids = {r.rollout_id for r in await clients[0].enqueue_rollouts([{"input": i} for i in range(400)])}
        claimed: list[tuple[str, int]] = []
        await asyncio.wait_for(asyncio.gather(*(_drain_queue(c, f"w{i}", claimed) for i, c in enumerate(clients))), 60)
        assert len(claimed) == 400
        assert {rollout_id for rollout_id, _ in claimed} == ids
        assert all(seq == 1 for _, seq in claimed)
        workers = await clients[0].query_workers()
        assert workers.total == 8
    finally:
        for client in clients:
            await client.close()


async def test_embedded_store_concurrent_dequeuers(store: LightningStore) -> None:
    await store.enqueue_rollouts([{"input": i} for i in range(200)])
    claimed: list[tuple[str, int]] = []
    await asyncio.wait_for(asyncio.gather(*(_drain_queue(store, f"w{i}", claimed) for i in range(8))), 60)
    assert len(claimed) == 200 and len({r for r, _ in claimed}) == 200


async def test_no_rollout_is_counted_twice_after_retries(server: ServerProcess) -> None:
    """Slow workers report success after their attempt timed out; the retry races them. Every
    rollout still has exactly one terminal event, and the counts add up."""
    config = RolloutConfig(timeout_seconds=0.4, max_attempts=3, retry_condition=["timeout"])
    async with GrpcStore(server.address) as store:
        rollouts = await store.enqueue_rollouts([{"input": i, "config": config} for i in range(60)])
        ids = [r.rollout_id for r in rollouts]
        late_reports_refused = 0
        finished = asyncio.Event()

        async def work(worker: int) -> None:
            nonlocal late_reports_refused
            rng = random.Random(worker)
            while not finished.is_set():
                rollout = await store.dequeue_rollout(worker_id=f"w{worker}", wait=0.2)
                if rollout is None:
                    continue
                attempt = rollout.attempt
                assert attempt is not None
                await store.add_span(new_span("work", rollout_id=rollout.rollout_id, attempt_id=attempt.attempt_id))
                if attempt.sequence_id == 1 and rng.random() < 0.4:
                    await asyncio.sleep(0.6)  # this agent is slower than the timeout allows
                try:
                    await store.update_attempt(rollout.rollout_id, attempt.attempt_id, status="succeeded")
                except FailedPreconditionError:
                    late_reports_refused += 1

        async def until_all_done() -> None:
            await store.wait_for_rollouts(ids, timeout=60)
            finished.set()

        await asyncio.wait_for(asyncio.gather(until_all_done(), *(work(w) for w in range(8))), 90)

        terminal_events: collections.Counter[str] = collections.Counter()
        last = (await store.stats())["last_event_id"]
        async for event in store.watch_rollouts(after_event_id=0):  # the whole durable log
            if event.new_status.is_terminal:
                terminal_events[event.rollout_id] += 1
            if event.event_id == last:
                break
        assert set(terminal_events) == set(ids)
        assert all(count == 1 for count in terminal_events.values()), terminal_events.most_common(3)
        page = await store.query_rollouts(rollout_id_in=ids)
        assert sum(r.status == RolloutStatus.SUCCEEDED for r in page) == 60
        assert late_reports_refused > 0, "the test must exercise late reports"


async def test_an_abandoned_long_poll_claims_nothing(server: ServerProcess) -> None:
    """A worker that gives up its long poll (its call cancelled) must not be handed the next rollout."""
    async with GrpcStore(server.address) as quitter, GrpcStore(server.address) as stayer:
        poll = asyncio.create_task(quitter.dequeue_rollout(worker_id="quitter", wait=30))
        await until_polling(stayer, "quitter")
        poll.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poll
        rollout = await stayer.enqueue_rollout("for whoever is still there")
        got = await stayer.dequeue_rollout(worker_id="stayer", wait=10)
        assert got is not None and got.rollout_id == rollout.rollout_id
        assert got.attempt is not None and got.attempt.worker_id == "stayer" and got.attempt.sequence_id == 1
        attempts = await stayer.query_attempts(rollout.rollout_id)
        assert attempts.total == 1
