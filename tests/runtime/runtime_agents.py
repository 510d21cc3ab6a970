"""Agents the runtime tests run; a module of its own so runner processes can import them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from agl_core.litagent import LitAgent, llm_rollout, prompt_rollout, rollout
from agl_core.tracer import NullTracer
from agl_core.types import PromptTemplate, Rollout


@rollout
async def parity_agent(task: Any) -> float:
    """Reward 1 for even numbers, 0 for odd ones."""
    await asyncio.sleep(0)
    return 1.0 if int(task) % 2 == 0 else 0.0


@rollout
async def hang_first_attempt(task: dict[str, Any], rollout: Rollout) -> float:
    """Hangs on the first attempt of a task marked ``block`` (until its runner is killed); every
    other attempt succeeds at once."""
    assert rollout.attempt is not None
    if task.get("block") and rollout.attempt.sequence_id == 1:
        await asyncio.Event().wait()
    await asyncio.sleep(0.001)
    return 1.0


@rollout
async def hang_forever(task: Any) -> float:
    """Never finishes (while letting its event loop run)."""
    _say_started(task)
    await asyncio.Event().wait()
    return 0.0


@rollout
async def block_the_loop(task: Any) -> float:
    """A stuck agent that blocks its runner's event loop (ignores the stop event and SIGINT)."""
    _say_started(task)
    time.sleep(120)
    return 0.0


class EchoAgent(LitAgent[Any]):
    """A class-based synchronous agent: the reward is the task's ``reward`` field."""

    def rollout(self, task: Any, resources: Any, rollout: Rollout) -> float:
        return float(task["reward"])


@llm_rollout
async def llm_quiz_agent(task: dict[str, Any], llm: Any) -> None:
    """Asks the LLM resource through the ``openai`` client and emits a reward; returns None, so what
    the store gets is what the default tracer recorded (the LLM call and the reward)."""
    import openai

    from agl_core.emitter import emit_reward

    # A client per rollout, never closed, as many agents do: the runner's finalizer guard
    # (agl_core/runner/client_finalizers.py) is what keeps a run of these from hanging.
    client = openai.AsyncOpenAI(base_url=llm.endpoint, api_key=llm.api_key or "unused")
    reply = await client.chat.completions.create(
        model=llm.model,
        messages=[{"role": "user", "content": task["question"]}],
        extra_body={"return_token_ids": True},
    )
    emit_reward(1.0 if task["expect"] in (reply.choices[0].message.content or "") else 0.0)


READY_TRACER = NullTracer()  # a component named by path as an instance (``--tracer runtime_agents:READY_TRACER``)


@prompt_rollout
def experiment_probe(task: dict[str, Any], prompt_template: PromptTemplate) -> float:
    """Reward 1 when the prompt template is the one of the task's own experiment (namespace)."""
    return 1.0 if prompt_template.template.startswith(f"{task['experiment']}:") else 0.0


def _say_started(task: Any) -> None:
    """Create the file a task names under "started": an attempt claimed RUNNING has not reached its
    agent yet, so a test that must act while the agent runs waits for this file instead."""
    if isinstance(task, dict) and task.get("started"):
        Path(task["started"]).touch()
