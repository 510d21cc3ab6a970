"""Running a batch of rollouts from an algorithm: enqueue, follow, read the rewards.

Completions are followed on the store's event log (``watch_rollouts``), never polled; rewards are
read from each succeeded rollout's spans (its last ``agl.reward`` span) while the others run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from agl_core.emitter.reward import find_final_reward
from agl_core.errors import FailedPreconditionError
from agl_core.types.core import Rollout, RolloutConfig, RolloutMode, RolloutSpec, RolloutStatus

TERMINAL = (RolloutStatus.SUCCEEDED, RolloutStatus.FAILED, RolloutStatus.CANCELLED)
ENQUEUE_BATCH = 500
REWARD_READS = 8


@dataclass
class RolloutOutcome:
    """A finished rollout and its final reward (None when it failed or emitted none)."""

    rollout: Rollout
    reward: float | None

    @property
    def succeeded(self) -> bool:
        return self.rollout.status == RolloutStatus.SUCCEEDED


async def read_reward(store: Any, rollout_id: str) -> float | None:
    """The final reward of a rollout's latest attempt: the value of its last ``agl.reward`` span."""
    return find_final_reward(await store.query_spans(rollout_id, "latest"))


async def run_rollouts(
    store: Any,
    inputs: Iterable[Any],
    *,
    mode: RolloutMode | str | None = None,
    resources_id: str | None = None,
    config: RolloutConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    cancel_on_timeout: bool = False,
) -> list[RolloutOutcome]:
    """Enqueue one rollout per input and return the outcomes, in input order, once every one is
    terminal.

    :param config: the rollouts' retry and timeout policy (None: the store's, or the Trainer's
        default when the store came from a Trainer).
    :param timeout: seconds to wait in all; :class:`TimeoutError` after it.
    :param cancel_on_timeout: instead of raising when ``timeout`` passes, cancel the rollouts still
        unfinished and return them among the outcomes (status ``cancelled``, no reward), so a
        caller that scores a batch gets every outcome it could and is never held up by a stuck one.
    """
    # The event log position before the first enqueue: no completion can slip past the watch.
    position = int((await store.stats())["last_event_id"])
    rollouts: list[Rollout] = []
    iterator = iter(inputs)
    while chunk := list(islice(iterator, ENQUEUE_BATCH)):
        rollouts += await store.enqueue_rollouts(
            [
                RolloutSpec(
                    input=item,
                    mode=mode,
                    resources_id=resources_id,
                    config=config,
                    metadata=dict(metadata) if metadata else None,
                )
                for item in chunk
            ]
        )
    if not rollouts:
        return []
    pending = {rollout.rollout_id for rollout in rollouts}
    finished: dict[str, Rollout] = {}
    reads = asyncio.Semaphore(REWARD_READS)
    rewards: dict[str, asyncio.Task[float | None]] = {}

    async def reward_of(rollout_id: str) -> float | None:
        async with reads:
            return await read_reward(store, rollout_id)

    async def follow() -> None:
        events = store.watch_rollouts(status_in=TERMINAL, after_event_id=position)
        try:
            async for event in events:
                if event.rollout_id in pending:
                    pending.discard(event.rollout_id)
                    finished[event.rollout_id] = event.rollout
                    if event.new_status == RolloutStatus.SUCCEEDED:
                        rewards[event.rollout_id] = asyncio.create_task(reward_of(event.rollout_id))
                    if not pending:
                        return
        finally:
            with contextlib.suppress(Exception):
                await events.aclose()

    try:
        await asyncio.wait_for(follow(), timeout)
    except TimeoutError:
        if not cancel_on_timeout:
            for task in rewards.values():
                task.cancel()
            raise
        for rollout_id in sorted(pending):
            rollout = await _cancel(store, rollout_id)
            finished[rollout_id] = rollout
            if rollout.status == RolloutStatus.SUCCEEDED:  # it finished between the deadline and the cancel
                rewards[rollout_id] = asyncio.create_task(reward_of(rollout_id))
    except BaseException:
        for task in rewards.values():
            task.cancel()
        raise
    values = dict(zip(rewards, await asyncio.gather(*rewards.values()), strict=True))
    return [RolloutOutcome(finished[r.rollout_id], values.get(r.rollout_id)) for r in rollouts]


async def _cancel(store: Any, rollout_id: str) -> Rollout:
    """Cancel a rollout unless it has become terminal meanwhile; returns it as it ends up."""
    try:
        return await store.update_rollout(rollout_id, status=RolloutStatus.CANCELLED)  # type: ignore[no-any-return]
    except FailedPreconditionError:  # already terminal: keep the status it reached
        rollout = await store.get_rollout(rollout_id)
        assert rollout is not None
        return rollout  # type: ignore[no-any-return]


def mean_reward(outcomes: Iterable[RolloutOutcome]) -> float | None:
    values = [o.reward for o in outcomes if o.reward is not None]
    return sum(values) / len(values) if values else None
