"""Agents of the APO tests; a module of its own so runner processes can import them."""

from __future__ import annotations

import asyncio
from typing import Any

from orders import extract_order

from agl_core.litagent import prompt_rollout
from agl_core.types import LLM, PromptTemplate


@prompt_rollout
async def flaky_extract_order(task: dict[str, Any], prompt_template: PromptTemplate, llm: LLM) -> float:
    """The example's agent, except on tasks marked ``explode`` (it raises) or ``hang`` (it never
    returns, until its runner is stopped)."""
    if task.get("explode"):
        raise RuntimeError("the order system is down")
    if task.get("hang"):
        await asyncio.Event().wait()
    return await extract_order(task, prompt_template, llm)  # type: ignore[no-any-return]
