"""The order-extraction agent of ``examples/apo_orders``, written with LangGraph: a ReAct agent that
looks the product up in the shop's catalog (a tool), then writes the order line.

The prompt being optimised is the agent's user message (``prompt_template`` resource); the task,
tasks and grader are those of ``examples/apo_orders/orders.py``. The agent is traced by
OpenInference's LangChain instrumentation (``instrument=["langchain"]``) and by agl's own OpenAI
instrumentation (token ids); the adapters read both.
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

__all__ = ["SEED_PROMPT", "langgraph_order", "lookup_product", "make_tasks"]


@prompt_rollout
async def langgraph_order(task: dict[str, Any], prompt_template: PromptTemplate, llm: LLM) -> float:
    """Run the agent on one message with the prompt being optimised; grade its final answer."""
    import httpx
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent

    # A client of this rollout's own: langchain-openai's shared default client is bound to the event
    # loop that first used it, and runners in threads (strategy shm) each run their own loop.
    async with httpx.AsyncClient() as http:
        model = ChatOpenAI(
            model=llm.model,
            base_url=llm.endpoint,
            api_key=llm.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
            temperature=0.0,
            http_async_client=http,
        )
        agent = create_react_agent(model, tools=[tool(lookup_product)])
        state = await agent.ainvoke({"messages": [("user", prompt_template.format(message=task["message"]))]})
    reply = state["messages"][-1].content
    score, feedback = grade(reply if isinstance(reply, str) else str(reply), task["expected"])
    emit_message(feedback)
    return score
