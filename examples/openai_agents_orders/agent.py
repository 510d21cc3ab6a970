"""The order-extraction agent of ``examples/apo_orders``, written with the OpenAI Agents SDK: an
agent with one tool (the shop's catalog) that it calls before writing the order line.

The prompt being optimised is the agent's input (``prompt_template`` resource); the tasks and
grader are those of ``examples/apo_orders/orders.py``. The SDK is traced by OpenInference's
OpenAI Agents instrumentation (``instrument=["openai-agents"]``), whose spans replace the SDK's
own trace export (nothing is sent to OpenAI's tracing backend), and by agl's OpenAI
instrumentation (token ids).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apo_orders"))

from orders import SEED_PROMPT, grade, lookup_product, make_tasks

from agl_core.emitter import emit_message
from agl_core.litagent import prompt_rollout
from agl_core.types import LLM, PromptTemplate

__all__ = ["SEED_PROMPT", "agents_order", "lookup_product", "make_tasks"]


@prompt_rollout
async def agents_order(task: dict[str, Any], prompt_template: PromptTemplate, llm: LLM) -> float:
    """Run the agent on one message with the prompt being optimised; grade its final answer."""
    import openai
    from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool

    client = openai.AsyncOpenAI(
        base_url=llm.endpoint, api_key=llm.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
    )
    agent = Agent(
        name="orders",
        model=OpenAIChatCompletionsModel(model=llm.model, openai_client=client),
        model_settings=ModelSettings(temperature=0.0),
        tools=[function_tool(lookup_product)],
    )
    try:
        result = await Runner.run(agent, prompt_template.format(message=task["message"]))
    finally:
        await client.close()
    score, feedback = grade(str(result.final_output), task["expected"])
    emit_message(feedback)
    return score
