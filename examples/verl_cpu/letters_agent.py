"""An agent whose reward a policy can learn from its own output: answer in words, not digits.

The agent asks the LLM (through agl's LLM proxy: each call becomes a training sample with token
ids) and scores the reply it got: the share of its non-space characters that are letters. A tiny
random model, whose tokenizer was trained on arithmetic text, answers mostly in digits (about 0.1);
a policy that learnt to pick word tokens scores near 1. Nothing but the model's reply decides the
reward.
"""

from __future__ import annotations

from typing import Any

import openai

from agl_core.litagent import llm_rollout
from agl_core.types import LLM

MAX_TOKENS = 8


def letter_share(text: str) -> float:
    """Share of the non-space characters of ``text`` that are letters (0 for an empty reply)."""
    chars = [c for c in text if not c.isspace()]
    return sum(c.isalpha() for c in chars) / len(chars) if chars else 0.0


def tasks(count: int, offset: int = 0) -> list[dict[str, Any]]:
    return [{"prompt": f"Describe the number {offset + i} in words."} for i in range(count)]


@llm_rollout
async def letters(task: dict[str, Any], llm: LLM) -> float:
    async with openai.AsyncOpenAI(base_url=llm.endpoint, api_key=llm.api_key or "none", max_retries=0) as client:
        reply = await client.chat.completions.create(
            model=llm.model,
            messages=[{"role": "user", "content": task["prompt"]}],
            max_tokens=MAX_TOKENS,
            temperature=float(llm.sampling_parameters.get("temperature", 1.0)),
            top_p=float(llm.sampling_parameters.get("top_p", 1.0)),
        )
    return letter_share(reply.choices[0].message.content or "")
