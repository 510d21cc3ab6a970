"""What ``Trainer.fit()`` and ``Trainer.dev()`` return: the run's rollouts counted by status, the
mean reward, an overall status, and what the algorithm itself returned.

A run whose every rollout failed is not an exception (the algorithm finished, and its result may
still say why) but it must not pass unnoticed: its status is ``"failed"``, the Trainer logs a
warning saying so, and :meth:`FitResult.raise_for_status` turns it into an error for scripts and CI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from agl_core.errors import AglError

FitStatus = Literal["succeeded", "partial", "failed", "no_rollouts"]


class RunFailedError(AglError):
    """Every rollout of a run failed (see :meth:`FitResult.raise_for_status`)."""


@dataclass(frozen=True)
class SplitSummary:
    """The rollouts of one mode (``train``, ``val``, ...) of a run."""

    rollouts: int
    succeeded: int
    failed: int
    cancelled: int = 0
    unfinished: int = 0
    mean_reward: float | None = None

    def __str__(self) -> str:
        text = f"{self.rollouts} rollouts: {self.succeeded} succeeded, {self.failed} failed"
        if self.cancelled:
            text += f", {self.cancelled} cancelled"
        if self.unfinished:
            text += f", {self.unfinished} unfinished"
        reward = "n/a" if self.mean_reward is None else f"{self.mean_reward:.3f}"
        return f"{text}, mean reward {reward}"


@dataclass(frozen=True)
class FitResult:
    """The outcome of a Trainer run.

    :ivar status: ``succeeded`` (no rollout failed), ``partial`` (some failed), ``failed`` (rollouts
        ran and none succeeded) or ``no_rollouts``.
    :ivar splits: per mode (``train``, ``val``, ...), the rollouts counted by status and their mean reward.
    :ivar result: what the algorithm returned (e.g. APO's :class:`APOResult`). Its attributes are
        also readable on the FitResult itself: ``fit(...).best_prompt``.
    """

    status: FitStatus
    splits: dict[str, SplitSummary] = field(default_factory=dict)
    result: Any = field(default=None, repr=False)

    @classmethod
    def of(cls, result: Any, splits: dict[str, SplitSummary]) -> FitResult:
        total = sum(s.rollouts for s in splits.values())
        succeeded = sum(s.succeeded for s in splits.values())
        failed = sum(s.failed for s in splits.values())
        status: FitStatus
        if total == 0:
            status = "no_rollouts"
        elif succeeded == 0:
            status = "failed"
        elif failed:
            status = "partial"
        else:
            status = "succeeded"
        return cls(status, splits, result)

    @property
    def rollouts(self) -> int:
        return sum(s.rollouts for s in self.splits.values())

    @property
    def mean_reward(self) -> float | None:
        """The mean reward of the training rollouts (of all rollouts when there is no ``train`` split)."""
        split = self.splits.get("train")
        if split is not None:
            return split.mean_reward
        rewards = [(s.mean_reward, s.succeeded) for s in self.splits.values() if s.mean_reward is not None]
        weight = sum(n for _, n in rewards)
        return sum(r * n for r, n in rewards) / weight if weight else None

    def raise_for_status(self) -> FitResult:
        """Raise :class:`RunFailedError` when every rollout failed; return self otherwise."""
        if self.status == "failed":
            raise RunFailedError(f"every rollout of the run failed: {self}")
        return self

    def __getattr__(self, name: str) -> Any:
        # Only called for names the FitResult lacks: the algorithm's own result answers them.
        if name.startswith("__") or name == "result":
            raise AttributeError(name)
        try:
            return getattr(self.result, name)
        except AttributeError:
            raise AttributeError(
                f"FitResult has no attribute {name!r}, and neither has the algorithm's result "
                f"({type(self.result).__name__})"
            ) from None

    def __str__(self) -> str:
        splits = "; ".join(f"{mode} {summary}" for mode, summary in self.splits.items()) or "no rollouts"
        return f"{self.status}: {splits}"

    def __repr__(self) -> str:
        return f"FitResult({self})"
