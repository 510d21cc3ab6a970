"""Rollout-level credit (agl.credit): GRPO advantages per rollout and the per-rollout mean loss,
checked against values computed by hand, and against verl's own GRPO where the two must agree."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from agl_plugins.verl.batch import Call, rollout_samples, to_data_proto
from agl_plugins.verl.config import AglSettings, ConfigError
from agl_plugins.verl.credit import compute_advantages, rollout_advantages, rollout_mean_weights

S = 1 / math.sqrt(2)  # the GRPO advantage of a group of two with returns 1 and 0 (std with Bessel's correction)
EPS = 1e-6
B = 0.5 / (1 + EPS)  # task b's lone rollout: mean 0 and std 1 by verl's convention -> its return


def algorithm(**overrides: object) -> object:
    base = {
        "adv_estimator": "grpo",
        "gamma": 1.0,
        "lam": 1.0,
        "norm_adv_by_std_in_grpo": True,
        "use_kl_in_reward": False,
    }
    return OmegaConf.create({**base, **overrides})


def batch_of(rollouts: list[tuple[str, str, list[Call], float]], placement: str = "final") -> object:
    """A DataProto of (uid, rollout_id, calls, final reward), one sample per call."""
    samples = [
        sample
        for uid, rollout_id, calls, final in rollouts
        for sample in rollout_samples(
            calls, level="transition", placement=placement, final_reward=final, uid=uid, rollout_id=rollout_id
        )
    ]
    data, _ = to_data_proto(samples, pad_token_id=0, max_prompt_length=4, max_response_length=3)
    data.batch["token_level_rewards"] = data.batch["token_level_scores"]  # as the trainer's adv phase sets it
    return data


def call(reward: float | None = None, length: int = 2) -> Call:
    return Call([5, 6], list(range(7, 7 + length)), reward)


# Task "a": rollout r1 made two calls and scored 1, r2 one call and scored 0. Task "b": r3 alone, 0.5.
ROLLOUTS = [("a", "r1", [call(), call()], 1.0), ("a", "r2", [call()], 0.0), ("b", "r3", [call(length=3)], 0.5)]


def test_rollout_advantages_by_hand() -> None:
    advantages = rollout_advantages([1.0, 1.0, 0.0, 0.5], ["a", "a", "a", "b"], ["r1", "r1", "r2", "r3"])
    # Group a = {r1: 1, r2: 0}: mean 0.5, std 0.7071 -> +-0.7071 whatever r1's number of calls.
    # Group b has one rollout: mean 0, std 1 (verl's convention) -> its return, 0.5.
    assert advantages.tolist() == pytest.approx([0.5 / (S + EPS), 0.5 / (S + EPS), -0.5 / (S + EPS), B])
    unnormalised = rollout_advantages([1.0, 1.0, 0.0], ["a"] * 3, ["r1", "r1", "r2"], norm_by_std=False)
    assert unnormalised.tolist() == [0.5, 0.5, -0.5]
    assert rollout_mean_weights(["r1", "r1", "r2", "r3"]).tolist() == [0.5, 0.5, 1.0, 1.0]
    with pytest.raises(ValueError, match="different returns"):
        rollout_advantages([1.0, 0.0], ["a", "a"], ["r1", "r1"])


def test_sample_level_is_verls_grpo_and_counts_calls() -> None:
    data = compute_advantages(batch_of(ROLLOUTS), algorithm(), level="sample", rollout_mean_loss=False, n=2)
    per_sample = data.batch["advantages"][:, 0].tolist()
    # verl groups the samples: a = [1, 1, 0]: mean 2/3, std sqrt(1/3) -> r1's calls +0.5774 each, r2 -1.1547.
    std = math.sqrt(1 / 3)
    expected = [(1 / 3) / (std + EPS), (1 / 3) / (std + EPS), (-2 / 3) / (std + EPS), B]
    assert per_sample == pytest.approx(expected, abs=1e-5)


def test_rollout_level_advantages_on_every_generated_token() -> None:
    data = compute_advantages(batch_of(ROLLOUTS), algorithm(), level="rollout", rollout_mean_loss=False, n=2)
    a = 0.5 / (S + EPS)
    expected = torch.tensor([[a, a, 0.0], [a, a, 0.0], [-a, -a, 0.0], [B, B, B]])  # padding gets 0
    assert torch.allclose(data.batch["advantages"], expected, atol=1e-6)
    assert torch.equal(data.batch["returns"], data.batch["advantages"])


def test_rollout_mean_loss_weighs_each_rollout_once() -> None:
    a = 0.5 / (S + EPS)
    rollout = compute_advantages(batch_of(ROLLOUTS), algorithm(), level="rollout", rollout_mean_loss=True, n=2)
    assert rollout.batch["advantages"][:, 0].tolist() == pytest.approx([a / 2, a / 2, -a, B])
    sample = compute_advantages(batch_of(ROLLOUTS), algorithm(), level="sample", rollout_mean_loss=True, n=2)
    std = math.sqrt(1 / 3)
    assert sample.batch["advantages"][:, 0].tolist() == pytest.approx(
        [(1 / 3) / (std + EPS) / 2, (1 / 3) / (std + EPS) / 2, (-2 / 3) / (std + EPS), B], abs=1e-5
    )


def test_one_call_per_rollout_both_levels_agree() -> None:
    rollouts = [
        ("a", "r1", [call()], 1.0),
        ("a", "r2", [call()], 0.0),
        ("b", "r3", [call()], 0.2),
        ("b", "r4", [call()], 0.8),
    ]
    by_sample = compute_advantages(batch_of(rollouts), algorithm(), level="sample", rollout_mean_loss=False, n=2)
    by_rollout = compute_advantages(batch_of(rollouts), algorithm(), level="rollout", rollout_mean_loss=False, n=2)
    assert torch.allclose(by_sample.batch["advantages"], by_rollout.batch["advantages"], atol=1e-6)


def test_per_call_rewards_sum_to_the_rollout_return() -> None:
    # per_call placement: r1's calls earned 0.25 and 0.75 (return 1), r2's single call 0 (return 0).
    rollouts = [("a", "r1", [call(0.25), call(0.75)], 9.0), ("a", "r2", [call(0.0)], 9.0)]
    data = batch_of(rollouts, placement="per_call")
    assert data.non_tensor_batch["rollout_return"].tolist() == [1.0, 1.0, 0.0]
    rollout = compute_advantages(data, algorithm(), level="rollout", rollout_mean_loss=False, n=2)
    a = 0.5 / (S + EPS)
    assert rollout.batch["advantages"][:, 0].tolist() == pytest.approx([a, a, -a])
    # Sample level keeps each call's own reward as its score: [0.25, 0.75, 0] compared within the group.
    sample = compute_advantages(
        batch_of(rollouts, placement="per_call"), algorithm(), level="sample", rollout_mean_loss=False, n=2
    )
    scores = torch.tensor([0.25, 0.75, 0.0])
    expected = (scores - scores.mean()) / (scores.std() + EPS)
    assert sample.batch["advantages"][:, 0].tolist() == pytest.approx(expected.tolist(), abs=1e-5)


def test_rollout_level_refuses_what_it_cannot_honour() -> None:
    with pytest.raises(ConfigError, match="adv_estimator"):
        compute_advantages(
            batch_of(ROLLOUTS), algorithm(adv_estimator="gae"), level="rollout", rollout_mean_loss=False, n=2
        )
    with pytest.raises(ConfigError, match="use_kl_in_reward"):
        compute_advantages(
            batch_of(ROLLOUTS), algorithm(use_kl_in_reward=True), level="rollout", rollout_mean_loss=False, n=2
        )
    with pytest.raises(ConfigError, match=r"agl\.credit\.level"):
        AglSettings.from_mapping({"credit": {"level": "episode"}})
    assert AglSettings.from_mapping(None).credit.level == "sample"  # the default (see credit.py for why)
