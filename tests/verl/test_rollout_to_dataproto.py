"""The rollout phase end to end on CPU: a real agl-server, runners whose agent calls the LLM proxy in
front of the test backend, the daemon following the rollouts on WatchRollouts, and the DataProto it
yields, checked value by value for both reward placements and both aggregation levels; then verl
computes GRPO advantages on it."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
import torch
from agl_llm_proxy import LLMProxy
from support.openai_server import OpenAIServer
from support.runners import runners

from agl_core.client import GrpcStore
from agl_core.emitter import emit_reward
from agl_core.tracer import OtelTracer
from agl_core.types import LLM, Rollout
from agl_plugins.verl.batch import continues, to_data_proto
from agl_plugins.verl.config import RolloutSettings
from agl_plugins.verl.daemon import RolloutDaemon

PAD = 0
SURE = "are you sure"
TASKS = [{"question": "what is 3 plus 4"}, {"question": "what is 10 minus 7"}]
CALL_REWARD = 0.25  # emitted for the first call, linked to it by response id


def final_reward(rollout: Rollout) -> float:
    return 1.0 if rollout.metadata["repeat"] == 0 else 0.0


async def math_agent(rollout: Rollout, llm: LLM) -> None:
    """Two turns through the proxy; a reward for the first call, then the final reward.

    ``behaviour`` in the task: ``fail`` raises after the first call, ``fail_once`` does so on the
    first attempt only, ``hang`` never answers, ``no_reward`` emits no reward.
    """
    assert rollout.attempt is not None
    task: dict[str, Any] = rollout.input
    behaviour = task.get("behaviour", "ok")
    if behaviour == "hang":
        await asyncio.Event().wait()
    client = openai.AsyncOpenAI(
        base_url=llm.get_base_url(rollout.rollout_id, rollout.attempt.attempt_id), api_key="t", max_retries=0
    )
    messages = [{"role": "user", "content": task["question"]}]
    first = await client.chat.completions.create(model=llm.model, messages=messages)
    if behaviour == "fail" or (behaviour == "fail_once" and rollout.attempt.sequence_id == 1):
        raise RuntimeError("the tool crashed")
    if behaviour != "no_reward":
        emit_reward(CALL_REWARD, response_id=first.id)
    messages += [{"role": "assistant", "content": first.choices[0].message.content}, {"role": "user", "content": SURE}]
    await client.chat.completions.create(model=llm.model, messages=messages)
    if behaviour != "no_reward":
        emit_reward(final_reward(rollout))


def turn_ids(backend: OpenAIServer, question: str) -> tuple[list[int], list[int], list[int], list[int]]:
    """What the backend returned for the two calls: (prompt 1, response 1, prompt 2, response 2)."""
    answer = f"echo: {question}"
    first = [{"role": "user", "content": question}]
    second = [*first, {"role": "assistant", "content": answer}, {"role": "user", "content": SURE}]
    return (
        backend.prompt_token_ids(first),
        backend.response_token_ids(answer, "length"),
        backend.prompt_token_ids(second),
        backend.response_token_ids(f"echo: {SURE}", "length"),
    )


def left(ids: list[int], width: int) -> list[int]:
    return [PAD] * (width - len(ids)) + ids


def right(ids: list[int], width: int, fill: int = PAD) -> list[int]:
    return ids + [fill] * (width - len(ids))


def check_row(
    tensors: dict[str, torch.Tensor],
    row: int,
    *,
    prompt: list[int],
    response: list[int],
    mask: list[int],
    rewards: dict[int, float],
) -> None:
    width_p, width_r = tensors["prompts"].shape[1], tensors["responses"].shape[1]
    attention = [0] * (width_p - len(prompt)) + [1] * (len(prompt) + len(response)) + [0] * (width_r - len(response))
    positions = [0] * (width_p - len(prompt)) + list(range(len(prompt) + len(response)))
    positions += [len(prompt) + len(response) - 1] * (width_r - len(response))
    scores = [0.0] * width_r
    for position, value in rewards.items():
        scores[position] = value
    assert tensors["prompts"][row].tolist() == left(prompt, width_p)
    assert tensors["responses"][row].tolist() == right(response, width_r)
    assert tensors["input_ids"][row].tolist() == left(prompt, width_p) + right(response, width_r)
    assert tensors["attention_mask"][row].tolist() == attention
    assert tensors["response_mask"][row].tolist() == right(mask, width_r, 0)
    assert tensors["position_ids"][row].tolist() == positions
    assert tensors["token_level_scores"][row].tolist() == scores
    assert tensors["is_drop_mask"][row].item() is False


async def run_step(
    grpc_store: GrpcStore, tracer: OtelTracer, proxy: LLMProxy, tasks: list[dict[str, Any]], **settings: Any
) -> Any:
    daemon = RolloutDaemon(grpc_store, settings=RolloutSettings(**settings))
    async with runners(grpc_store, tracer, math_agent, count=3):
        return await daemon.rollout(
            tasks, resources={"main_llm": proxy.as_resource("agl-test-model")}, n=2, mode="train", step=1
        )


async def test_transition_level_dataproto_for_both_reward_placements(
    grpc_store: GrpcStore, tracer: OtelTracer, proxy: LLMProxy, backend: OpenAIServer
) -> None:
    batch = await run_step(grpc_store, tracer, proxy, TASKS)
    assert batch.metrics["agl/rollouts"] == 4 and batch.metrics["agl/rollouts_used"] == 4
    assert [(f.task_index, f.repeat) for f in batch.finished] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert len({f.uid for f in batch.finished}) == 2 and batch.finished[0].uid == batch.finished[1].uid
    assert [f.final_reward for f in batch.finished] == [1.0, 0.0, 1.0, 0.0]
    assert proxy.counters["recorded"] == 8

    for placement in ("final", "per_call"):
        samples = batch.samples("transition", placement)
        data, metrics = to_data_proto(samples, pad_token_id=PAD, max_prompt_length=32, max_response_length=8)
        assert metrics["agl/samples"] == 8 and len(data) == 8
        tensors = {k: data.batch[k] for k in data.batch.keys()}
        assert tensors["prompts"].shape == (8, 32) and tensors["input_ids"].shape == (8, 40)
        row = 0
        for finished, task in zip(batch.finished, [TASKS[0], TASKS[0], TASKS[1], TASKS[1]], strict=True):
            p1, r1, p2, r2 = turn_ids(backend, task["question"])
            final = 1.0 if finished.repeat == 0 else 0.0
            first_reward = final if placement == "final" else CALL_REWARD
            check_row(tensors, row, prompt=p1, response=r1, mask=[1] * len(r1), rewards={len(r1) - 1: first_reward})
            check_row(tensors, row + 1, prompt=p2, response=r2, mask=[1] * len(r2), rewards={len(r2) - 1: final})
            assert list(data.non_tensor_batch["rollout_id"][row : row + 2]) == [finished.rollout_id] * 2
            assert list(data.non_tensor_batch["uid"][row : row + 2]) == [finished.uid] * 2
            assert list(data.non_tensor_batch["call_index"][row : row + 2]) == [0, 1]
            row += 2

    # Literal spot checks of the first sample (prompt "what is 3 plus 4": 9 ids; answer: 6 ids).
    data, _ = to_data_proto(
        batch.samples("transition", "final"), pad_token_id=PAD, max_prompt_length=32, max_response_length=8
    )
    assert data.batch["attention_mask"][0].tolist() == [0] * 23 + [1] * 15 + [0] * 2
    assert data.batch["position_ids"][0, 22:].tolist() == [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 14, 14]
    assert data.batch["token_level_scores"][0].nonzero().flatten().tolist() == [5]

    # verl computes GRPO advantages on it: a task's samples form one group (uid), scores are the sums.
    from verl.trainer.ppo.core_algos import AdvantageEstimator
    from verl.trainer.ppo.ray_trainer import compute_advantage

    data.batch["token_level_rewards"] = data.batch["token_level_scores"]
    data = compute_advantage(data, adv_estimator=AdvantageEstimator.GRPO, num_repeat=2)
    group = torch.tensor([1.0, 1.0, 0.0, 0.0])  # scores of task 0's four transitions
    expected = (group - group.mean()) / (group.std() + 1e-6)
    for row in range(4):
        valid = data.batch["response_mask"][row].bool()
        assert torch.allclose(data.batch["advantages"][row][valid], expected[row].expand(int(valid.sum())))
        assert data.batch["advantages"][row][~valid].abs().sum() == 0


async def test_trajectory_level_merges_turns_and_places_per_call_rewards(
    grpc_store: GrpcStore, tracer: OtelTracer, proxy: LLMProxy, backend: OpenAIServer
) -> None:
    batch = await run_step(grpc_store, tracer, proxy, TASKS)
    for placement in ("final", "per_call"):
        samples = batch.samples("trajectory", placement)
        data, _ = to_data_proto(samples, pad_token_id=PAD, max_prompt_length=16, max_response_length=20)
        assert len(data) == 4  # one merged sample per rollout
        tensors = {k: data.batch[k] for k in data.batch.keys()}
        for row, finished in enumerate(batch.finished):
            p1, r1, p2, r2 = turn_ids(backend, TASKS[finished.task_index]["question"])
            assert continues(p1 + r1, p2)
            added = p2[len(p1) + len(r1) :]
            assert added == [3, 11, *backend.token_ids(SURE), 3, 12]  # end of turn, the user's turn, generation prompt
            response = r1 + added + r2
            final = 1.0 if finished.repeat == 0 else 0.0
            if placement == "final":
                rewards = {len(response) - 1: final}
            else:
                rewards = {len(r1) - 1: CALL_REWARD, len(response) - 1: final}
            mask = [1] * len(r1) + [0] * len(added) + [1] * len(r2)
            check_row(tensors, row, prompt=p1, response=response, mask=mask, rewards=rewards)
        assert list(data.non_tensor_batch["num_calls"]) == [2, 2, 2, 2]


async def test_failed_hung_retried_and_rewardless_rollouts(
    grpc_store: GrpcStore, tracer: OtelTracer, proxy: LLMProxy, backend: OpenAIServer
) -> None:
    tasks = [
        {"question": "ok one", "behaviour": "ok"},
        {"question": "crash", "behaviour": "fail"},
        {"question": "retry me", "behaviour": "fail_once"},
        {"question": "silent", "behaviour": "no_reward"},
        {"question": "stuck", "behaviour": "hang"},
    ]
    daemon = RolloutDaemon(
        grpc_store,
        settings=RolloutSettings(step_timeout=4.0, max_attempts=2, retry_condition=["failed"], reward_fill_value=0.0),
    )
    resources = {"main_llm": proxy.as_resource("agl-test-model")}
    async with runners(grpc_store, tracer, math_agent, count=6):
        loop = asyncio.get_running_loop()
        started = loop.time()
        batch = await daemon.rollout(tasks, resources=resources, n=1, step=3)
        elapsed = loop.time() - started
    assert elapsed < 10  # the hung rollout did not hold the step past its deadline (4 s) for long
    by_task = {tasks[f.task_index]["behaviour"]: f for f in batch.finished}
    assert sorted(by_task) == ["fail_once", "no_reward", "ok"]
    statuses = sorted(batch.statuses.values())
    assert statuses == ["cancelled", "failed", "succeeded", "succeeded", "succeeded"]
    # The retried rollout is trained on its last attempt only: two calls, not three.
    assert len(by_task["fail_once"].calls) == 2
    assert by_task["no_reward"].final_reward == 0.0 and by_task["no_reward"].reward_filled
    assert batch.metrics["agl/rollouts_failed"] == 1 and batch.metrics["agl/rollouts_cancelled"] == 1
    assert batch.metrics["agl/rollouts_reward_filled"] == 1
    stuck = next(r for r in batch.statuses if batch.statuses[r] == "cancelled")
    assert (await grpc_store.get_rollout(stuck)).status == "cancelled"  # type: ignore[union-attr]

    strict = RolloutDaemon(grpc_store, settings=RolloutSettings(reward_fill_value=None, step_timeout=30))
    async with runners(grpc_store, tracer, math_agent, count=2):
        dropped = await strict.rollout([tasks[3], tasks[0]], resources=resources, n=1)
    assert sorted(dropped.statuses.values()) == ["succeeded", "succeeded"], dropped.metrics
    assert [tasks[[3, 0][f.task_index]]["behaviour"] for f in dropped.finished] == ["ok"]
    assert dropped.metrics["agl/rollouts_without_reward_dropped"] == 1


@pytest.mark.parametrize("bad", [{"max_attempts": 0}, {"step_timeout": 0}, {"retry_condition": ["broken"]}])
def test_rollout_settings_reject_bad_values(bad: dict[str, Any]) -> None:
    from agl_plugins.verl.config import ConfigError

    with pytest.raises(ConfigError, match=next(iter(bad))):
        RolloutSettings(**bad)
