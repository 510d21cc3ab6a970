"""A small math agent with a calculator tool, trained with verl through agl.

The agent asks the model a question, lets it call ``calculate`` (OpenAI tool calls) up to
``MAX_TURNS`` times, and reads the last number of its final answer. Rewards:

- each call that produced a well-formed tool call gets ``TOOL_REWARD`` (emitted with the call's
  response id, so it lands on that call: ``agl.trace_aggregator.reward_placement=per_call``);
- the rollout's final reward is 1.0 for the right answer, 0.0 otherwise.

The agent talks to whatever OpenAI-compatible endpoint the ``main_llm`` resource names: during
training, the LLM proxy in front of verl's vLLM servers, on a per-attempt route.
"""

from __future__ import annotations

import ast
import json
import operator
import random
import re
from typing import Any

import openai

from agl_core.emitter import emit_reward
from agl_core.litagent import llm_rollout
from agl_core.tracer import OtelTracer
from agl_core.types import LLM, Rollout

MAX_TURNS = 3
TOOL_REWARD = 0.1
SYSTEM = "Solve the arithmetic problem. Use the calculate tool if it helps. End with: Answer: <number>"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "calculate",
            "description": "Evaluate an arithmetic expression with + - * / and parentheses.",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string"}},
                "required": ["expression"],
            },
        },
    }
]
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def calculate(expression: str) -> str:
    """The tool: a safe evaluator of + - * / over numbers (no names, no calls)."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError(f"unsupported expression: {expression!r}")

    try:
        value = ev(ast.parse(expression, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError) as exc:
        return f"error: {exc}"
    return str(int(value)) if value == int(value) else f"{value:.6g}"


def make_tasks(count: int, seed: int) -> list[dict[str, Any]]:
    """Arithmetic tasks ``{"question", "answer"}``, the same for the same seed."""
    rng = random.Random(seed)
    tasks = []
    for _ in range(count):
        a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 9)
        question = f"What is ({a} + {b}) * {c}?"
        tasks.append({"question": question, "answer": (a + b) * c})
    return tasks


def final_number(text: str | None) -> float | None:
    numbers = re.findall(r"-?\d+(?:\.\d+)?", text or "")
    return float(numbers[-1]) if numbers else None


async def math_agent(rollout: Rollout, llm: LLM) -> float:
    """Run one task; returns the final reward it emitted."""
    assert rollout.attempt is not None
    task: dict[str, Any] = rollout.input
    client = openai.AsyncOpenAI(
        base_url=llm.get_base_url(rollout.rollout_id, rollout.attempt.attempt_id), api_key="agl", max_retries=0
    )
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": task["question"]},
    ]
    sampling = dict(llm.sampling_parameters)
    answer: str | None = None
    async with client:  # closed when the rollout ends: one connection per rollout, not one left behind
        for _ in range(MAX_TURNS):
            reply = await client.chat.completions.create(
                model=llm.model,
                messages=messages,
                tools=TOOLS,
                **sampling,  # type: ignore[arg-type]
            )
            message = reply.choices[0].message
            calls = message.tool_calls or []
            messages.append(message.model_dump(exclude_none=True))
            if not calls:
                answer = message.content
                break
            for call in calls:
                try:
                    expression = json.loads(call.function.arguments)["expression"]  # type: ignore[union-attr]
                    result = calculate(str(expression))
                except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                    result = 'error: arguments must be {"expression": "..."}'
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
            if any(not m["content"].startswith("error") for m in messages[-len(calls) :]):
                emit_reward(TOOL_REWARD, response_id=reply.id)
    reward = 1.0 if final_number(answer) == float(task["answer"]) else 0.0
    emit_reward(reward)
    return reward


@llm_rollout
async def math_rollout(task: dict[str, Any], llm: LLM, rollout: Rollout) -> None:
    """The agent as agl runners serve it (``agl runner --agent agent:math_rollout``). Its rewards are
    already spans (emit_reward), so it returns nothing; ``llm`` is the attempt's route through the
    LLM proxy."""
    await math_agent(rollout, llm)


# The LLM proxy records every LLM call with its token ids, so the runners' tracer records only what
# the agent emits (rewards) rather than a second copy of each call.
tracer = OtelTracer(instrument_openai=False)

__all__ = [
    "MAX_TURNS",
    "TOOLS",
    "TOOL_REWARD",
    "calculate",
    "final_number",
    "make_tasks",
    "math_agent",
    "math_rollout",
    "tracer",
]
