"""The ``DataProto`` boundary: finished rollouts (their LLM calls with token ids) to verl's tensors.

Pure functions, no Ray and no store, so every rule here is testable on a CPU:

1. :func:`rollout_samples` turns one rollout's calls into training samples at the chosen
   :class:`AggregationLevel`, with rewards placed by :class:`RewardPlacement`;
2. :func:`build_tensors` pads and stacks samples into the tensors verl trains on;
3. :func:`to_data_proto` wraps them in a ``DataProto`` with the ids verl groups by (``uid``).

Layout (verl's, the same as its own agent loop): ``prompts`` left-padded to ``max_prompt_length``,
``responses`` right-padded to ``max_response_length``, ``input_ids`` their concatenation,
``attention_mask`` 1 on real tokens, ``response_mask`` 1 on tokens the policy generated (0 on
padding and, in a merged trajectory, on tool output and chat-template tokens between calls),
``position_ids`` = cumulative sum of the attention mask minus one (0 on the left padding),
``token_level_scores`` the rewards at response positions, ``is_drop_mask`` samples to leave
out of the update (their prompt was too long).

Rules, documented once:

- **Transition level** (default): one sample per LLM call. ``final`` placement gives every call
  of the rollout the rollout's final reward (the original's broadcast); ``per_call`` gives each call
  the reward matched to it (a reward emitted with ``response_id=`` or matched by the adapter's
  policy) and no reward to calls without one.
- **Trajectory level**: consecutive calls are merged into one sample while each call's prompt
  starts with the previous call's prompt + response (the usual multi-turn chat); the tokens the
  next prompt adds (tool results, template tokens) enter the response with mask 0. A call whose
  prompt does not continue the context starts a new sample. ``final`` placement puts the final
  reward on the sample's last token; ``per_call`` puts each call's reward on the last token of that
  call's own response inside the merged sample.
- A prompt longer than ``max_prompt_length`` keeps its last ``max_prompt_length`` tokens and the
  sample is marked in ``is_drop_mask`` (it takes part in advantage statistics, not in the update).
- A response longer than ``max_response_length`` is cut; a reward whose position was cut off
  moves to the last kept token (rewards landing on the same token add up).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from verl import DataProto


class AggregationLevel(StrEnum):
    """How a rollout's LLM calls become samples: one per call, or merged multi-turn trajectories."""

    TRANSITION = "transition"
    TRAJECTORY = "trajectory"


class RewardPlacement(StrEnum):
    """Where rewards go: the final reward on every sample (``final``), or each call's on that call."""

    FINAL = "final"
    PER_CALL = "per_call"


@dataclass
class Call:
    """One LLM call of a rollout: its token ids and the reward matched to it (None: none)."""

    prompt_ids: list[int]
    response_ids: list[int]
    reward: float | None = None


@dataclass
class Sample:
    """One training sample before padding.

    :ivar response_mask: per response token, 1 if the policy generated it.
    :ivar rewards: response position -> reward.
    :ivar uid: the group the sample belongs to (GRPO compares samples of the same task).
    :ivar calls: indices of the rollout's calls the sample holds.
    :ivar rollout_return: the return of the whole rollout (see :func:`rollout_return`).
    """

    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    rewards: dict[int, float] = field(default_factory=dict)
    uid: str = ""
    rollout_id: str = ""
    calls: list[int] = field(default_factory=list)
    rollout_return: float = 0.0


def _place(rewards: dict[int, float], position: int, value: float | None) -> None:
    if value is not None:
        rewards[position] = rewards.get(position, 0.0) + value


def transition_samples(calls: Sequence[Call], placement: RewardPlacement, final_reward: float | None) -> list[Sample]:
    """One sample per call (calls without response tokens give none)."""
    samples = []
    for index, call in enumerate(calls):
        if not call.response_ids:
            continue
        sample = Sample(list(call.prompt_ids), list(call.response_ids), [1] * len(call.response_ids), calls=[index])
        value = final_reward if placement is RewardPlacement.FINAL else call.reward
        _place(sample.rewards, len(call.response_ids) - 1, value)
        samples.append(sample)
    return samples


def continues(context: Sequence[int], prompt_ids: Sequence[int]) -> bool:
    """Whether a call's prompt starts with the context so far (the previous prompt + response)."""
    return len(prompt_ids) >= len(context) and list(prompt_ids[: len(context)]) == list(context)


def trajectory_samples(calls: Sequence[Call], placement: RewardPlacement, final_reward: float | None) -> list[Sample]:
    """Consecutive calls merged while each prompt continues the context (see the module docstring)."""
    samples: list[Sample] = []
    current: Sample | None = None
    context: list[int] = []
    for index, call in enumerate(calls):
        if not call.response_ids:
            continue
        if current is not None and continues(context, call.prompt_ids):
            added = list(call.prompt_ids[len(context) :])
            current.response_ids += added + list(call.response_ids)
            current.response_mask += [0] * len(added) + [1] * len(call.response_ids)
            current.calls.append(index)
        else:
            current = Sample(
                list(call.prompt_ids), list(call.response_ids), [1] * len(call.response_ids), calls=[index]
            )
            samples.append(current)
        context = list(call.prompt_ids) + list(call.response_ids)
        if placement is RewardPlacement.PER_CALL:
            _place(current.rewards, len(current.response_ids) - 1, call.reward)
    if placement is RewardPlacement.FINAL:
        for sample in samples:
            _place(sample.rewards, len(sample.response_ids) - 1, final_reward)
    return samples


def rollout_return(calls: Sequence[Call], placement: RewardPlacement | str, final_reward: float | None) -> float:
    """A rollout's return for rollout-level credit: its final reward (``final`` placement) or the
    sum of its calls' rewards (``per_call``); a missing reward counts 0."""
    if RewardPlacement(placement) is RewardPlacement.FINAL:
        return float(final_reward or 0.0)
    return float(sum(call.reward or 0.0 for call in calls if call.response_ids))


def rollout_samples(
    calls: Sequence[Call],
    *,
    level: AggregationLevel | str,
    placement: RewardPlacement | str,
    final_reward: float | None,
    uid: str,
    rollout_id: str,
) -> list[Sample]:
    """The samples of one rollout."""
    build = trajectory_samples if AggregationLevel(level) is AggregationLevel.TRAJECTORY else transition_samples
    samples = build(calls, RewardPlacement(placement), final_reward)
    returned = rollout_return(calls, placement, final_reward)
    for sample in samples:
        sample.uid, sample.rollout_id, sample.rollout_return = uid, rollout_id, returned
    return samples


@dataclass
class Tensors:
    """The padded batch (see the module docstring) and what padding had to cut."""

    tensors: dict[str, torch.Tensor]
    prompts_too_long: int = 0
    responses_cut: int = 0


def build_tensors(
    samples: Sequence[Sample], *, pad_token_id: int, max_prompt_length: int, max_response_length: int
) -> Tensors:
    """Pad and stack samples into verl's tensors (shapes ``[B, P]``, ``[B, R]``, ``[B, P + R]``)."""
    if not samples:
        raise ValueError("no samples to build a batch from")
    if max_prompt_length < 1 or max_response_length < 1:
        raise ValueError("max_prompt_length and max_response_length must be at least 1")
    size = len(samples)
    prompts = torch.full((size, max_prompt_length), pad_token_id, dtype=torch.long)
    prompt_attention = torch.zeros((size, max_prompt_length), dtype=torch.long)
    responses = torch.full((size, max_response_length), pad_token_id, dtype=torch.long)
    response_attention = torch.zeros((size, max_response_length), dtype=torch.long)
    response_mask = torch.zeros((size, max_response_length), dtype=torch.long)
    scores = torch.zeros((size, max_response_length), dtype=torch.float32)
    drop = torch.zeros(size, dtype=torch.bool)
    too_long = cut = 0
    for row, sample in enumerate(samples):
        prompt = sample.prompt_ids
        if len(prompt) > max_prompt_length:
            prompt = prompt[-max_prompt_length:]
            drop[row] = True
            too_long += 1
        if prompt:
            prompts[row, max_prompt_length - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            prompt_attention[row, max_prompt_length - len(prompt) :] = 1
        response, mask = sample.response_ids, sample.response_mask
        if len(response) > max_response_length:
            response, mask = response[:max_response_length], mask[:max_response_length]
            cut += 1
        responses[row, : len(response)] = torch.tensor(response, dtype=torch.long)
        response_attention[row, : len(response)] = 1
        response_mask[row, : len(mask)] = torch.tensor(mask, dtype=torch.long)
        for position, value in sample.rewards.items():
            scores[row, min(position, len(response) - 1)] += value
    attention_mask = torch.cat([prompt_attention, response_attention], dim=1)
    position_ids = torch.clamp(torch.cumsum(attention_mask, dim=1) - 1, min=0)
    tensors = {
        "prompts": prompts,
        "responses": responses,
        "input_ids": torch.cat([prompts, responses], dim=1),
        "attention_mask": attention_mask,
        "response_mask": response_mask,
        "position_ids": position_ids,
        "token_level_scores": scores,
        "is_drop_mask": drop,
    }
    return Tensors(tensors, prompts_too_long=too_long, responses_cut=cut)


def to_data_proto(
    samples: Sequence[Sample],
    *,
    pad_token_id: int,
    max_prompt_length: int,
    max_response_length: int,
    meta_info: dict[str, Any] | None = None,
) -> tuple[DataProto, dict[str, float]]:
    """Samples as verl's ``DataProto`` (non-tensor ``uid``, ``rollout_id``, ``call_index``,
    ``num_calls``, ``rollout_return``) and metrics."""
    from verl import DataProto

    built = build_tensors(
        samples, pad_token_id=pad_token_id, max_prompt_length=max_prompt_length, max_response_length=max_response_length
    )
    non_tensors = {
        "uid": np.array([s.uid for s in samples], dtype=object),
        "rollout_id": np.array([s.rollout_id for s in samples], dtype=object),
        "call_index": np.array([s.calls[0] if s.calls else -1 for s in samples], dtype=np.int64),
        "num_calls": np.array([len(s.calls) for s in samples], dtype=np.int64),
        "rollout_return": np.array([s.rollout_return for s in samples], dtype=np.float64),
    }
    data = DataProto.from_dict(tensors=built.tensors, non_tensors=non_tensors, meta_info=dict(meta_info or {}))
    metrics = {
        "agl/samples": float(len(samples)),
        "agl/samples_prompt_too_long": float(built.prompts_too_long),
        "agl/samples_response_cut": float(built.responses_cut),
    }
    return data, metrics


__all__ = [
    "AggregationLevel",
    "Call",
    "RewardPlacement",
    "Sample",
    "Tensors",
    "build_tensors",
    "continues",
    "rollout_return",
    "rollout_samples",
    "to_data_proto",
    "trajectory_samples",
    "transition_samples",
]
