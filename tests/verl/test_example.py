"""The verl_math example on CPU: its tiny model loads through verl's and transformers' loading code,
its configs pass verl's own validation, and its agent's tool call and rewards go through the proxy
into a training batch with the tool reward on its own call."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from agl_llm_proxy import LLMProxy
from support.openai_server import OpenAIServer
from support.runners import runners

from agl_core.client import GrpcStore
from agl_core.tracer import OtelTracer
from agl_plugins.verl.batch import to_data_proto
from agl_plugins.verl.config import RolloutSettings
from agl_plugins.verl.daemon import RolloutDaemon

EXAMPLE = Path(__file__).parents[2] / "examples" / "verl_math"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"verl_math_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _load("tiny_model").build(tmp_path_factory.mktemp("tiny") / "tiny-qwen2")


def test_tiny_model_loads_through_verl_and_generates(tiny_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import HFModelConfig

    from agl_plugins.verl.entrypoint import load_config

    config = load_config([f"actor_rollout_ref.model.path={tiny_model}"])
    model_config: HFModelConfig = omega_conf_to_dataclass(config.actor_rollout_ref.model)
    tokenizer = model_config.tokenizer
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    messages = [{"role": "user", "content": "What is (3 + 4) * 2?"}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nWhat is (3 + 4) * 2?<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text  # byte-level BPE round-trips
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert model.config.model_type == "qwen2" and model.config.hidden_size // model.config.num_attention_heads == 64
    inputs = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_example_configs_pass_verls_validation(tiny_model: Path) -> None:
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    from agl_plugins.verl.config import AglSettings
    from agl_plugins.verl.entrypoint import load_config

    train = _load("train")
    for files, gpus in (([EXAMPLE / "config.yaml"], 4), ([EXAMPLE / "config.yaml", EXAMPLE / "tiny.yaml"], 1)):
        merged = train.load_configs(files)
        config = load_config([f"actor_rollout_ref.model.path={tiny_model}", f"trainer.n_gpus_per_node={gpus}"], merged)
        validate_config(
            config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
        )
        settings = AglSettings.from_mapping(config.agl)
        assert settings.trace_aggregator.reward_placement == "per_call"
        assert settings.rollout.rollout_config().max_attempts == 2
    assert config.actor_rollout_ref.rollout.n == 2 and config.data.train_batch_size == 4


async def test_example_agent_tool_call_and_rewards_reach_the_batch(
    grpc_store: GrpcStore, tracer: OtelTracer, openai_server: OpenAIServer
) -> None:
    agent = _load("agent")
    assert agent.calculate("(12 + 30) * 3") == "126" and agent.calculate("__import__('os')").startswith("error")
    tasks = [{"question": "What is (12 + 30) * 3?", "answer": 126}]
    openai_server.script(
        {"tool_calls": [{"name": "calculate", "arguments": '{"expression": "(12 + 30) * 3"}'}]},
        "The result is 126. Answer: 126",
    )
    async with LLMProxy([openai_server.base_url], store=grpc_store) as proxy:
        daemon = RolloutDaemon(grpc_store, settings=RolloutSettings(step_timeout=60))
        async with runners(grpc_store, tracer, agent.math_agent, count=1):
            batch = await daemon.rollout(tasks, resources={"main_llm": proxy.as_resource("m")}, n=1)
    [finished] = batch.finished
    assert finished.final_reward == 1.0 and len(finished.calls) == 2
    assert [c.reward for c in finished.calls] == [agent.TOOL_REWARD, 1.0]
    assert openai_server.requests[0]["tools"] == agent.TOOLS
    assert openai_server.requests[1]["messages"][-1] == {"role": "tool", "tool_call_id": "call_0_0", "content": "126"}
    [sample] = batch.samples("trajectory", "per_call")
    data, _ = to_data_proto([sample], pad_token_id=0, max_prompt_length=128, max_response_length=128)
    scores = data.batch["token_level_scores"][0]
    first_end = len(finished.calls[0].response_ids) - 1
    assert scores.nonzero().flatten().tolist() == [first_end, len(sample.response_ids) - 1]
    assert scores[first_end].item() == pytest.approx(agent.TOOL_REWARD)


async def test_the_example_runner_command_serves_the_agent(grpc_store: GrpcStore, openai_server: OpenAIServer) -> None:
    """The runner processes train.py starts (``agl runner --agent agent:math_rollout --tracer
    agent:tracer`` in the example directory) take the rollouts and record the agent's rewards; the
    LLM calls are recorded once, by the proxy."""
    import asyncio
    import subprocess

    # One attempt at a time, so the two scripted replies go to the tasks in queue order.
    openai_server.script("Answer: 126", "Answer: 3")
    tasks = [{"question": "What is (12 + 30) * 3?", "answer": 126}, {"question": "What is 1 + 1?", "answer": 2}]
    command = [
        sys.executable,
        "-m",
        "agl_core.cli",
        "runner",
        "--server",
        grpc_store.address,
        "--agent",
        "agent:math_rollout",
        "--tracer",
        "agent:tracer",
        "--capacity",
        "1",
        "--worker-id",
        "example",
    ]
    process = subprocess.Popen(command, cwd=EXAMPLE)
    try:
        async with LLMProxy([openai_server.base_url], store=grpc_store) as proxy:
            daemon = RolloutDaemon(grpc_store, settings=RolloutSettings(step_timeout=60))
            batch = await daemon.rollout(tasks, resources={"main_llm": proxy.as_resource("m")}, n=1)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
    assert sorted(f.final_reward for f in batch.finished) == [0.0, 1.0]
    assert all(len(f.calls) == 1 for f in batch.finished)  # the proxy's span only, no second copy
    assert {w.worker_id for w in await grpc_store.query_workers()} == {"example"}
