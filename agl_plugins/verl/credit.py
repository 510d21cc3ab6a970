"""Credit assignment per rollout: GRPO advantages over rollouts, and a per-rollout mean loss.

A rollout may make several LLM calls, and each call (``transition`` level) or merged trajectory
(``trajectory`` level) is one training sample. verl's GRPO groups *samples* by task (``uid``): a
rollout that made three calls counts three times in its group's mean and standard deviation, and
its calls get three times the weight in the loss. ``agl.credit`` chooses:

- ``level: sample`` (default): verl's own advantage estimator on the samples, each sample scored
  by the rewards placed on it. It is verl's and the original Agent Lightning's behaviour, works
  with every ``algorithm.adv_estimator``, and is the level at which per-call rewards
  (``reward_placement: per_call``) give each call its own credit. With one call per rollout
  both levels are the same.
- ``level: rollout``: GRPO over rollouts. A group is the ``n`` rollouts of one task, however many
  calls each made; a rollout's return is its final reward (``reward_placement: final``) or the sum
  of its calls' rewards (``per_call``). ``A = (R - mean(group)) / (std(group) + epsilon)`` (std
  with Bessel's correction, as verl's GRPO; a group of one rollout gets ``A = R``, as verl's does;
  ``algorithm.norm_adv_by_std_in_grpo: false`` leaves the division out), and every generated
  token of every sample of the rollout gets ``A``. Use it when rollouts make varying numbers of
  calls and the reward is the rollout's.
- ``rollout_mean_loss: true``: each rollout weighs the same in the policy loss: the advantages of
  a rollout's ``k`` samples are scaled by ``1/k`` (the PPO clipped objective is linear in the
  advantage, so this is the per-rollout mean of its samples' losses). Works with both levels.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from verl import DataProto


class CreditLevel(StrEnum):
    SAMPLE = "sample"
    ROLLOUT = "rollout"


def rollout_advantages(
    returns: Sequence[float],
    uids: Sequence[str],
    rollout_ids: Sequence[str],
    *,
    norm_by_std: bool = True,
    epsilon: float = 1e-6,
) -> np.ndarray:
    """Per sample, the GRPO advantage of its rollout (see the module docstring).

    :param returns: per sample, its rollout's return (the same for all samples of a rollout).
    :param uids: per sample, its group (task).
    :param rollout_ids: per sample, its rollout.
    """
    if not len(returns) == len(uids) == len(rollout_ids):
        raise ValueError("returns, uids and rollout_ids must have one entry per sample")
    per_rollout: dict[str, float] = {}
    group_of: dict[str, str] = {}
    for value, uid, rollout_id in zip(returns, uids, rollout_ids, strict=True):
        if per_rollout.setdefault(rollout_id, float(value)) != float(value):
            raise ValueError(f"rollout {rollout_id} has samples with different returns")
        group_of[rollout_id] = uid
    members: dict[str, list[float]] = defaultdict(list)
    for rollout_id, value in per_rollout.items():
        members[group_of[rollout_id]].append(value)
    advantage: dict[str, float] = {}
    for rollout_id, value in per_rollout.items():
        group = torch.tensor(members[group_of[rollout_id]], dtype=torch.float64)
        mean, std = (group.mean().item(), group.std().item()) if len(group) > 1 else (0.0, 1.0)
        advantage[rollout_id] = (value - mean) / (std + epsilon) if norm_by_std else value - mean
    return np.array([advantage[r] for r in rollout_ids], dtype=np.float64)


def rollout_mean_weights(rollout_ids: Sequence[str]) -> np.ndarray:
    """Per sample, ``1 / (samples of its rollout)``."""
    counts: dict[str, int] = defaultdict(int)
    for rollout_id in rollout_ids:
        counts[rollout_id] += 1
    return np.array([1.0 / counts[r] for r in rollout_ids], dtype=np.float64)


def token_advantages(per_sample: np.ndarray, response_mask: torch.Tensor) -> torch.Tensor:
    """A per-sample advantage on every generated token of the sample (``[B, R]``)."""
    values = torch.as_tensor(per_sample, dtype=torch.float32).unsqueeze(-1)
    return values * response_mask.to(torch.float32)


def check(algorithm: Any, level: CreditLevel | str) -> None:
    """Refuse settings rollout-level credit cannot honour (raises ``ConfigError``)."""
    from agl_plugins.verl.config import ConfigError

    if CreditLevel(level) is CreditLevel.ROLLOUT:
        if algorithm.adv_estimator != "grpo":
            raise ConfigError(
                f"agl.credit.level=rollout computes GRPO advantages; algorithm.adv_estimator is "
                f"{algorithm.adv_estimator!r} (set it to grpo, or use agl.credit.level=sample)"
            )
        if algorithm.use_kl_in_reward:
            raise ConfigError(
                "agl.credit.level=rollout scores whole rollouts and cannot put a per-token KL penalty in the "
                "reward; use actor_rollout_ref.actor.use_kl_loss instead of algorithm.use_kl_in_reward"
            )


def compute_advantages(batch: DataProto, algorithm: Any, *, level: str, rollout_mean_loss: bool, n: int) -> DataProto:
    """``advantages`` and ``returns`` of ``batch`` at the chosen level (see the module docstring)."""
    from verl.trainer.ppo.ray_trainer import compute_advantage

    check(algorithm, level)
    extra = batch.non_tensor_batch
    mask = batch.batch["response_mask"]
    if CreditLevel(level) is CreditLevel.ROLLOUT:
        per_sample = rollout_advantages(
            extra["rollout_return"].tolist(),
            extra["uid"].tolist(),
            extra["rollout_id"].tolist(),
            norm_by_std=algorithm.get("norm_adv_by_std_in_grpo", True),
        )
        if rollout_mean_loss:
            per_sample = per_sample * rollout_mean_weights(extra["rollout_id"].tolist())
        batch.batch["advantages"] = token_advantages(per_sample, mask)
        batch.batch["returns"] = batch.batch["advantages"].clone()
        return batch
    batch = compute_advantage(
        batch,
        adv_estimator=algorithm.adv_estimator,
        gamma=algorithm.gamma,
        lam=algorithm.lam,
        num_repeat=n,
        norm_adv_by_std_in_grpo=algorithm.get("norm_adv_by_std_in_grpo", True),
        config=algorithm,
    )
    if rollout_mean_loss:
        weights = torch.as_tensor(rollout_mean_weights(extra["rollout_id"].tolist()), dtype=torch.float32)
        batch.batch["advantages"] = batch.batch["advantages"] * weights.unsqueeze(-1)
    return batch


__all__ = [
    "CreditLevel",
    "check",
    "compute_advantages",
    "rollout_advantages",
    "rollout_mean_weights",
    "token_advantages",
]
