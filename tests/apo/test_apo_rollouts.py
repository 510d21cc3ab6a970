"""``run_rollouts(cancel_on_timeout=True)``: a batch returns at its deadline with every outcome
it has, the unfinished rollouts cancelled, instead of raising or waiting on a stuck rollout."""

from __future__ import annotations

import asyncio

import pytest

from agl_core import semconv
from agl_core.adapter.messages import TraceToMessages
from agl_core.algorithm import run_rollouts
from agl_core.runner.results import reward_span
from agl_core.store import LightningStore
from agl_core.types import RolloutStatus
from agl_plugins.algorithms.apo.evaluation import Evaluation, experiments, spans_of


async def finish_one(store: LightningStore, reward: float) -> str:
    """Act as a runner for the first queued rollout: run it and report ``reward``."""
    rollout = await store.dequeue_rollout(worker_id="w", wait=10)
    assert rollout is not None
    await store.add_span(reward_span(rollout, reward))
    assert rollout.attempt is not None
    await store.update_attempt(rollout.rollout_id, rollout.attempt.attempt_id, status="succeeded")
    return rollout.rollout_id


async def test_unfinished_rollouts_are_cancelled_at_the_deadline(store: LightningStore) -> None:
    runner = asyncio.create_task(finish_one(store, 0.75))
    outcomes = await run_rollouts(store, ["done", "stuck"], timeout=2.0, cancel_on_timeout=True)
    finished = await runner
    assert [o.rollout.input for o in outcomes] == ["done", "stuck"]
    assert outcomes[0].rollout.rollout_id == finished
    assert (outcomes[0].rollout.status, outcomes[0].reward) == (RolloutStatus.SUCCEEDED, 0.75)
    assert (outcomes[1].rollout.status, outcomes[1].reward) == (RolloutStatus.CANCELLED, None)
    stored = await store.get_rollout(outcomes[1].rollout.rollout_id)
    assert stored is not None and stored.status == RolloutStatus.CANCELLED
    # A cancelled rollout is out of the queue: no runner gets it later.
    assert await store.dequeue_rollout(worker_id="w", wait=0) is None


async def test_without_cancel_on_timeout_the_deadline_still_raises(store: LightningStore) -> None:
    with pytest.raises(TimeoutError):
        await run_rollouts(store, ["stuck"], timeout=0.2)
    [rollout] = await store.query_rollouts()
    assert rollout.status == RolloutStatus.QUEUING


async def test_a_rollout_cancelled_before_any_attempt_is_shown_to_the_critique(store: LightningStore) -> None:
    """No runner took it before the deadline: it has no attempt and no spans, and APO's critique
    input says so instead of the round failing on the missing attempt."""
    tasks = [{"message": "two plums"}]
    outcomes = await run_rollouts(store, tasks, timeout=0.2, cancel_on_timeout=True)
    [outcome] = outcomes
    assert outcome.rollout.status == RolloutStatus.CANCELLED and not await store.query_attempts(
        outcome.rollout.rollout_id
    )
    [shown] = await experiments(store, tasks, Evaluation(outcomes, 0.0), TraceToMessages(), max_chars=2000)
    assert (shown["status"], shown["score"], shown["conversation"]) == ("cancelled", 0.0, [])
    assert shown["error"] == "no runner took the rollout before the batch deadline; it was cancelled"


class QuerySpansOnly:
    """A store as a third-party object may be one: ``query_spans`` of one rollout, and no more."""

    def __init__(self, store: LightningStore) -> None:
        self.query_spans = store.query_spans


async def test_the_critique_reads_a_batch_spans_in_one_query_or_rollout_by_rollout(store: LightningStore) -> None:
    runner = asyncio.create_task(finish_one(store, 0.5))
    outcomes = await run_rollouts(store, ["done", "never taken"], timeout=2.0, cancel_on_timeout=True)
    done, cancelled = (outcome.rollout.rollout_id for outcome in outcomes)
    assert await runner == done
    # One query of the batch, and rollout by rollout for a store without it: the same spans, and
    # none (not an error) for the rollout cancelled before any attempt.
    for reader in (store, QuerySpansOnly(store)):
        spans = await spans_of(reader, [done, cancelled])
        assert [span.name for span in spans[done]] == [semconv.SPAN_REWARD]
        assert spans[cancelled] == []
    shown = await experiments(
        store, ["done", "never taken"], Evaluation(outcomes, 0.0), TraceToMessages(), max_chars=2000
    )
    assert [(s["status"], s["reward"]) for s in shown] == [("succeeded", 0.5), ("cancelled", None)]
