"""A LangGraph agent for ``agl runner --instrument langchain`` (a module of its own so the runner
process can import it as ``framework_agents:langgraph_weather``)."""

from __future__ import annotations

from typing import Any

from agl_core.litagent import rollout


def lookup_weather(city: str) -> str:
    """Look up the weather of a city."""
    return f"sunny in {city}"


@rollout
async def langgraph_weather(task: dict[str, Any]) -> float:
    """A ReAct agent with one tool against the OpenAI-compatible server the task names."""
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent

    model = ChatOpenAI(model=task["model"], base_url=task["base_url"], api_key="test")
    agent = create_react_agent(model, tools=[tool(lookup_weather)])
    state = await agent.ainvoke({"messages": [("user", task["question"])]})
    return 1.0 if "sunny" in state["messages"][-1].content else 0.0
