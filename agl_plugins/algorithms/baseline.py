"""The ``baseline`` algorithm: run every task with the initial resources and report the rewards.

It trains nothing; it proves the pipes (store, runners, tracer, rewards) and gives the number a
real algorithm has to beat. Train and validation tasks are enqueued together; completions are
followed on the store's event log and each rollout's reward is read from its spans.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# The base class only: this module is a plugin every agl process imports, and the rollout helpers
# (emitters, OpenTelemetry) load when the algorithm runs.
from agl_core.algorithm.base import Algorithm
from agl_core.plugins import hookimpl
from agl_core.types.core import RolloutMode

if TYPE_CHECKING:
    from agl_core.algorithm.rollouts import RolloutOutcome

logger = logging.getLogger(__name__)


@dataclass
class SplitResult:
    """The outcome of one dataset split."""

    rollouts: int
    succeeded: int
    failed: int
    mean_reward: float | None
    outcomes: list[RolloutOutcome] = field(repr=False)  # every rollout with its spans: kilobytes each

    @classmethod
    def of(cls, outcomes: list[RolloutOutcome]) -> SplitResult:
        from agl_core.algorithm.rollouts import mean_reward

        succeeded = sum(1 for o in outcomes if o.succeeded)
        return cls(len(outcomes), succeeded, len(outcomes) - succeeded, mean_reward(outcomes), outcomes)

    def __str__(self) -> str:
        reward = f"{self.mean_reward:.3f}" if self.mean_reward is not None else "n/a"
        return f"{self.rollouts} rollouts, {self.succeeded} succeeded, {self.failed} failed, mean reward {reward}"


@dataclass
class BaselineResult:
    train: SplitResult | None = None
    val: SplitResult | None = None


class Baseline(Algorithm):
    """Run each task once per epoch with the initial resources; report the rewards.

    :param n_epochs: passes over the training set.
    :param timeout: seconds to wait for one pass (None: as long as it takes).
    """

    dev_compatible = True

    def __init__(self, *, n_epochs: int = 1, timeout: float | None = None) -> None:
        super().__init__()
        if n_epochs < 1:
            raise ValueError(f"n_epochs is {n_epochs}; run at least one epoch")
        self.n_epochs = n_epochs
        self.timeout = timeout

    async def run(self, train_dataset: Any = None, val_dataset: Any = None) -> BaselineResult:
        from agl_core.algorithm.rollouts import run_rollouts

        store = self.get_store()
        published = await self.publish_initial_resources()
        resources_id = published.resources_id if published is not None else None
        result = BaselineResult()
        for epoch in range(self.n_epochs):
            jobs = {}
            if train_dataset is not None:
                jobs["train"] = run_rollouts(
                    store,
                    train_dataset,
                    mode=RolloutMode.TRAIN,
                    resources_id=resources_id,
                    timeout=self.timeout,
                )
            if val_dataset is not None and epoch == self.n_epochs - 1:
                jobs["val"] = run_rollouts(
                    store, val_dataset, mode=RolloutMode.VAL, resources_id=resources_id, timeout=self.timeout
                )
            for split, outcomes in zip(jobs, await asyncio.gather(*jobs.values()), strict=True):
                summary = SplitResult.of(outcomes)
                setattr(result, split, summary)
                logger.info("baseline epoch %d/%d %s: %s", epoch + 1, self.n_epochs, split, summary)
        return result


@hookimpl
def agl_algorithms() -> dict[str, Any]:
    return {"baseline": Baseline}
