"""The rollout phase of a training step, done by agl runners through the store.

:meth:`RolloutDaemon.rollout` publishes the LLM resource (the vLLM servers behind the LLM proxy),
enqueues ``n`` rollouts per task with the configured timeouts and retries, follows them on the
store's WatchRollouts stream (no polling), reads each finished rollout's spans as soon as it
finishes (QuerySpans of its latest attempt, so a retried rollout counts once) and adapts them to
calls with token ids. It never outlives ``step_timeout``: rollouts still running at the deadline
are cancelled in the store and left out.

What is left out, and why, is counted in the metrics:

- rollouts that failed (after their retries), were cancelled, or missed the step deadline;
- succeeded rollouts without a single LLM call that has token ids;
- succeeded rollouts that emitted no reward, when ``reward_fill_value`` is None (otherwise their
  final reward is that value).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agl_core.adapter import TracerTraceToTriplet
from agl_core.emitter import find_final_reward
from agl_core.store import LightningStore
from agl_core.types import Resource, RolloutConfig, RolloutSpec, RolloutStatus
from agl_plugins.verl.batch import AggregationLevel, Call, RewardPlacement, Sample, rollout_samples
from agl_plugins.verl.config import RolloutSettings

logger = logging.getLogger(__name__)

_TERMINAL = (RolloutStatus.SUCCEEDED, RolloutStatus.FAILED, RolloutStatus.CANCELLED)


@dataclass
class FinishedRollout:
    """A rollout usable for training: its calls in order and its final reward (filled if need be)."""

    rollout_id: str
    task_index: int
    repeat: int
    uid: str
    calls: list[Call]
    final_reward: float
    reward_filled: bool = False


@dataclass
class RolloutBatch:
    """The outcome of one rollout phase.

    :ivar finished: the usable rollouts, by task, then repeat.
    :ivar statuses: every enqueued rollout's final status (``"cancelled"`` for those past the deadline).
    """

    finished: list[FinishedRollout] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def samples(self, level: AggregationLevel | str, placement: RewardPlacement | str) -> list[Sample]:
        """The training samples of every usable rollout, in order."""
        return [
            sample
            for f in self.finished
            for sample in rollout_samples(
                f.calls,
                level=level,
                placement=placement,
                final_reward=f.final_reward,
                uid=f.uid,
                rollout_id=f.rollout_id,
            )
        ]


def _task_input(task: Any) -> Any:
    """A task as the rollout input (numpy scalars and arrays as plain values)."""
    if hasattr(task, "tolist"):
        return task.tolist()
    if isinstance(task, Mapping):
        return {str(k): _task_input(v) for k, v in task.items()}
    if isinstance(task, (list, tuple)):
        return [_task_input(v) for v in task]
    if hasattr(task, "item") and callable(task.item):
        return task.item()
    return task


class RolloutDaemon:
    """Runs rollout phases against a store (see the module docstring).

    :param store: the store runners take work from (a ``GrpcStore`` to agl-server).
    :param adapter: spans to calls; it must keep only calls with token ids.
    :param settings: timeouts, retries, deadline and fill rules.
    :param rollout_defaults: the policy the ``settings`` keys left null inherit (the Trainer's
        ``rollout_config``; None: the standalone default).
    """

    def __init__(
        self,
        store: LightningStore,
        *,
        adapter: TracerTraceToTriplet | None = None,
        settings: RolloutSettings,
        rollout_defaults: RolloutConfig | None = None,
    ) -> None:
        self.store = store
        self.adapter = adapter or TracerTraceToTriplet(skip_without_token_ids=True)
        self.settings = settings
        self.rollout_defaults = rollout_defaults

    async def rollout(
        self,
        tasks: Sequence[Any],
        *,
        resources: Mapping[str, Resource],
        n: int = 1,
        mode: str = "train",
        step: int = 0,
        uids: Sequence[str] | None = None,
        resources_id: str | None = None,
        run_id: str = "",
    ) -> RolloutBatch:
        """Run ``n`` rollouts of every task and collect the usable ones.

        :param resources: published as the resources set the rollouts run with.
        :param uids: group id per task (default: a fresh id each); rollouts of a task share it.
        :param resources_id: the set's id (published again with a new version if it exists);
            None: a new id.
        :param run_id: a prefix of the rollout ids (``ro-{run_id}-{mode}-{step}-...``), so that a
            resumed run finds the rollouts an interrupted one left behind.
        """
        if n < 1:
            raise ValueError(f"n must be at least 1, not {n}")
        started = time.monotonic()
        deadline = started + self.settings.step_timeout
        if resources_id is not None:
            published = await self.store.update_resources(resources_id, resources)
        else:
            published = await self.store.add_resources(resources)
        uids = list(uids) if uids is not None else [uuid.uuid4().hex for _ in tasks]
        config = self.settings.rollout_config(self.rollout_defaults)
        specs: list[RolloutSpec] = []
        placement: dict[str, tuple[int, int, str]] = {}
        for index, (task, uid) in enumerate(zip(tasks, uids, strict=True)):
            for repeat in range(n):
                rollout_id = f"ro-{run_id + '-' if run_id else ''}{mode}-{step}-{uuid.uuid4().hex[:12]}"
                placement[rollout_id] = (index, repeat, uid)
                specs.append(
                    RolloutSpec(
                        rollout_id=rollout_id,
                        input=_task_input(task),
                        mode=mode,
                        resources_id=published.resources_id,
                        config=config,
                        metadata={"uid": uid, "task_index": index, "repeat": repeat, "step": step, "run_id": run_id},
                    )
                )
        batch = RolloutBatch()
        adapted: dict[str, asyncio.Task[FinishedRollout | str]] = {}
        async with self.store.watch_rollouts(rollout_ids=list(placement), status_in=_TERMINAL) as watch:
            await self.store.enqueue_rollouts(specs)
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    async for event in watch:
                        if event.rollout_id not in placement or event.rollout_id in batch.statuses:
                            continue
                        batch.statuses[event.rollout_id] = event.new_status.value
                        if event.new_status is RolloutStatus.SUCCEEDED:
                            adapted[event.rollout_id] = asyncio.create_task(
                                self._adapt(event.rollout_id, *placement[event.rollout_id])
                            )
                        if len(batch.statuses) == len(placement):
                            break
            except TimeoutError:
                missing = [r for r in placement if r not in batch.statuses]
                logger.warning(
                    "step %d: %d of %d rollouts not finished within %.0fs; cancelling them",
                    step,
                    len(missing),
                    len(placement),
                    self.settings.step_timeout,
                )
                await self._cancel(missing, batch)
        outcomes = await asyncio.gather(*adapted.values())
        counts = {"no_calls": 0, "no_reward": 0, "filled": 0}
        for outcome in outcomes:
            if isinstance(outcome, str):
                counts[outcome] += 1
            else:
                counts["filled"] += outcome.reward_filled
                batch.finished.append(outcome)
        batch.finished.sort(key=lambda f: (f.task_index, f.repeat))
        batch.metrics = self._metrics(batch, counts, len(placement), time.monotonic() - started)
        return batch

    async def _cancel(self, rollout_ids: Sequence[str], batch: RolloutBatch) -> None:
        async def cancel(rollout_id: str) -> None:
            try:
                rollout = await self.store.update_rollout(rollout_id, status="cancelled")
                batch.statuses[rollout_id] = rollout.status.value
            except Exception as exc:  # finished meanwhile, or the store is away: leave it out either way
                logger.warning("could not cancel rollout %s: %s", rollout_id, exc)
                batch.statuses[rollout_id] = "cancelled"

        await asyncio.gather(*(cancel(r) for r in rollout_ids))
        for rollout_id in rollout_ids:  # too late to train on, whatever the store says now
            batch.statuses[rollout_id] = "cancelled"

    async def _adapt(self, rollout_id: str, task_index: int, repeat: int, uid: str) -> FinishedRollout | str:
        spans = await self.store.query_spans(rollout_id, "latest")
        triplets = self.adapter.adapt(spans)
        calls = [Call(t.prompt.token_ids, t.response.token_ids, t.reward) for t in triplets]
        if not calls:
            logger.warning("rollout %s finished without an LLM call that has token ids; left out", rollout_id)
            return "no_calls"
        final = find_final_reward(spans)
        filled = final is None
        if final is None:
            if self.settings.reward_fill_value is None:
                logger.warning("rollout %s emitted no reward; left out (reward_fill_value is null)", rollout_id)
                return "no_reward"
            final = self.settings.reward_fill_value
        return FinishedRollout(rollout_id, task_index, repeat, uid, calls, final, reward_filled=filled)

    @staticmethod
    def _metrics(batch: RolloutBatch, counts: dict[str, int], total: int, seconds: float) -> dict[str, float]:
        statuses = list(batch.statuses.values())
        rewards = [f.final_reward for f in batch.finished]
        return {
            "agl/rollouts": float(total),
            "agl/rollouts_succeeded": float(statuses.count("succeeded")),
            "agl/rollouts_failed": float(statuses.count("failed")),
            "agl/rollouts_cancelled": float(statuses.count("cancelled")),
            "agl/rollouts_without_calls": float(counts["no_calls"]),
            "agl/rollouts_without_reward_dropped": float(counts["no_reward"]),
            "agl/rollouts_reward_filled": float(counts["filled"]),
            "agl/rollouts_used": float(len(batch.finished)),
            "agl/calls": float(sum(len(f.calls) for f in batch.finished)),
            "agl/reward_mean": float(sum(rewards) / len(rewards)) if rewards else 0.0,
            "agl/rollout_seconds": seconds,
        }


__all__ = ["FinishedRollout", "RolloutBatch", "RolloutDaemon"]
