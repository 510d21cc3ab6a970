"""The framework examples (``examples/langgraph_orders``: LangGraph; ``examples/openai_agents_orders``:
the OpenAI Agents SDK) train offline against the suite's toy models.

- APO: each example's ``train.py``, run as its README says, finds a better prompt round after
  round from critiques of the framework agent's traced rollouts.
- The verl rollout path: the same agents, traced by their framework's instrumentation and agl's,
  behind the LLM proxy, go through the verl plugin's RolloutDaemon: two calls per rollout (the
  tool call, then the answer), each with the token ids the server returned, and the grader's reward.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from agl_llm_proxy import LLMProxy
from support import apo_models
from support.openai_server import OpenAIServer

from agl_core.client import GrpcStore
from agl_core.runner import Runner, WorkStreamSource
from agl_core.tracer import OtelTracer
from agl_core.types import PromptTemplate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {
    "langgraph": (ROOT / "examples" / "langgraph_orders", "langgraph_order", "langchain", "langgraph"),
    "openai-agents": (ROOT / "examples" / "openai_agents_orders", "agents_order", "openai-agents", "agents"),
}
# The prompt APO ends up with when it finds every instruction: each reply then scores 1.
GOOD_PROMPT = "\n".join(
    ["Extract the order from this customer message.\n\nMessage: {message}", *apo_models.INSTRUCTIONS.values()]
)


def load_agent(name: str) -> ModuleType:
    directory, *_ = EXAMPLES[name]
    spec = importlib.util.spec_from_file_location(f"{directory.name}_agent", directory / "agent.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def toy_models() -> Iterator[OpenAIServer]:
    with OpenAIServer(reply=apo_models.reply) as server:
        yield server


@pytest.mark.parametrize("example", EXAMPLES)
def test_apo_improves_the_framework_agents_prompt(example: str, toy_models: OpenAIServer) -> None:
    directory, _, _, module = EXAMPLES[example]
    pytest.importorskip(module, reason=f"the framework of {directory.name} is not installed")
    env = {
        **os.environ,
        "OPENAI_BASE_URL": toy_models.base_url,
        "OPENAI_API_KEY": "x",
        "AGENT_MODEL": apo_models.AGENT_MODEL,
        "AGL_APO_GRADIENT_MODEL": apo_models.CRITIQUE_MODEL,
        "AGL_APO_EDIT_MODEL": apo_models.EDIT_MODEL,
    }
    command = [sys.executable, str(directory / "train.py"), "--rounds", "3", "--train", "8", "--val", "6"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    print(done.stdout)
    assert "seed prompt scored 0.000" in done.stdout
    best_so_far = [float(x) for x in re.findall(r"^round \d: leader [\d.]+, best so far ([\d.]+)$", done.stdout, re.M)]
    assert len(best_so_far) == 3 and best_so_far == sorted(best_so_far) and best_so_far[-1] >= 0.5
    # The agents really used their tool: every rollout's first call offered it and the second answered.
    agent_calls = [r for r in toy_models.requests if r.get("model") == apo_models.AGENT_MODEL]
    assert agent_calls and all(r.get("tools") for r in agent_calls)
    assert sum(any(m.get("role") == "tool" for m in r["messages"]) for r in agent_calls) == len(agent_calls) // 2


@pytest.mark.parametrize("example", EXAMPLES)
async def test_the_framework_agent_feeds_the_verl_rollout_path(
    example: str, grpc_store: GrpcStore, toy_models: OpenAIServer
) -> None:
    _, agent_name, instrumentation, module = EXAMPLES[example]
    pytest.importorskip(module, reason=f"the framework of {example} is not installed")
    pytest.importorskip("verl", reason="the verl extra is not installed")
    from agl_plugins.verl.config import RolloutSettings
    from agl_plugins.verl.daemon import RolloutDaemon

    agent = getattr(load_agent(example), agent_name)
    orders = sys.modules["orders"]
    tasks = orders.make_tasks(2, __import__("random").Random(3))
    tracer = OtelTracer(instrument=[instrumentation])
    tracer.init()
    stop = asyncio.Event()
    runner = Runner(
        agent, store=grpc_store, source=WorkStreamSource(grpc_store.address, worker_id="w1", capacity=2), tracer=tracer
    )
    serving = asyncio.create_task(runner.run(stop))
    try:
        async with LLMProxy([toy_models.base_url], store=grpc_store) as proxy:
            daemon = RolloutDaemon(grpc_store, settings=RolloutSettings(step_timeout=120))
            resources = {
                "main_llm": proxy.as_resource(apo_models.AGENT_MODEL),
                "prompt_template": PromptTemplate(template=GOOD_PROMPT),
            }
            batch = await daemon.rollout(tasks, resources=resources, n=2)
    finally:
        stop.set()
        await asyncio.wait_for(serving, 60)
        tracer.teardown()
    assert sorted(batch.statuses.values()) == ["succeeded"] * 4
    assert len(batch.finished) == 4
    requests = [r for r in toy_models.requests if r.get("model") == apo_models.AGENT_MODEL]
    expected_prompts = {tuple(toy_models.prompt_token_ids(r["messages"])) for r in requests}
    for finished in batch.finished:
        # One call per turn, counted once although the framework's span and the proxy's both record it.
        assert len(finished.calls) == 2
        assert all(tuple(c.prompt_ids) in expected_prompts and c.response_ids for c in finished.calls)
        assert finished.final_reward == 1.0 and not finished.reward_filled
    samples = batch.samples("transition", "final")
    assert len(samples) == 8 and all(s.rewards for s in samples)
