"""Real agent frameworks, traced by their real OpenTelemetry instrumentations, read back as triplets.

Each test runs a two-turn tool-using agent written with the framework against the local
OpenAI-compatible test server, inside a traced attempt against a real agl-server, with
``OtelTracer(instrument=[<name>])``; the spans the instrumentation wrote (GenAI or OpenInference
conventions) go through the store and the triplet adapter gives the exact calls back: the prompt
the model saw (the tool result included), its answer (the tool call included) and the reward.
With agl's own OpenAI instrumentation on as well, the calls keep their token ids.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.openai_server import OpenAIServer

from agl_core.adapter import TracerTraceToTriplet, Triplet
from agl_core.client import GrpcStore
from agl_core.emitter import emit_reward
from agl_core.tracer import OtelTracer
from agl_server.process import ServerProcess

QUESTION = "What is the weather in Paris?"
ARGS = '{"city": "Paris"}'
ANSWER = "It is sunny in Paris."


def lookup_weather(city: str) -> str:
    """Look up the weather of a city."""
    return f"sunny in {city}"


TOOL_RESULT = lookup_weather("Paris")


@pytest.fixture
def scripted(openai_server: OpenAIServer) -> OpenAIServer:
    openai_server.script({"tool_calls": [{"name": "lookup_weather", "arguments": ARGS}]}, ANSWER)
    return openai_server


def make_tracer(name: str, *, agl_openai: bool) -> Iterator[OtelTracer]:
    tracer = OtelTracer(instrument=[name], instrument_openai=agl_openai, request_token_ids=agl_openai)
    tracer.init()
    try:
        yield tracer
    finally:
        tracer.teardown()


async def traced_run(tracer: OtelTracer, server: ServerProcess, agent: Callable[[], Awaitable[Any]]) -> list[Triplet]:
    """One rollout: the agent inside a traced attempt, a reward, the spans read back as triplets."""
    store = GrpcStore(server.address)
    try:
        [rollout] = await store.enqueue_rollouts([{"input": {"question": QUESTION}}])
        taken = await store.dequeue_rollout(worker_id="w1", wait=5)
        assert taken is not None and taken.attempt is not None
        async with tracer.trace_context(
            "agent", store=store, rollout_id=taken.rollout_id, attempt_id=taken.attempt.attempt_id
        ):
            await agent()
            emit_reward(1.0)
        await store.update_attempt(taken.rollout_id, taken.attempt.attempt_id, status="succeeded")
        spans = await store.query_spans(rollout.rollout_id)
        assert {s.attempt_id for s in spans} == {taken.attempt.attempt_id}
        return TracerTraceToTriplet(reward_match="last").adapt(spans)
    finally:
        await store.close()


def check_two_turns(
    triplets: list[Triplet], convention: str, server: OpenAIServer, *, token_ids: bool, tool_call_id: bool = True
) -> None:
    """The exact calls of the tool-using agent: call 1 asks for the tool, call 2 answers with its result."""
    assert [t.metadata["convention"] for t in triplets] == [convention, convention]
    first, second = triplets
    user = [m for m in first.prompt.content if m["role"] == "user"]
    assert user == [{"role": "user", "content": QUESTION}]
    [call] = first.response.content["tool_calls"]
    assert call["function"]["name"] == "lookup_weather"
    assert json.loads(call["function"]["arguments"]) == json.loads(ARGS)
    roles = [m["role"] for m in second.prompt.content]
    assert roles[-3:] == ["user", "assistant", "tool"]
    assert second.prompt.content[-2]["tool_calls"][0]["id"] == call["id"]
    if tool_call_id:  # (OpenInference's LiteLLM instrumentation does not record a tool message's)
        assert second.prompt.content[-1]["tool_call_id"] == call["id"]
    assert second.prompt.content[-1]["content"] == TOOL_RESULT
    assert second.response.content["content"] == ANSWER
    assert (first.reward, second.reward) == (None, 1.0)
    if token_ids:
        for triplet, request in zip(triplets, server.requests[-2:], strict=True):
            assert triplet.prompt.token_ids == server.prompt_token_ids(request["messages"])
        assert second.response.token_ids == server.response_token_ids(ANSWER)


# --- LangGraph (OpenInference's LangChain instrumentation) ----------------------------------------


def langgraph_agent(server: OpenAIServer) -> Callable[[], Awaitable[Any]]:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent

    model = ChatOpenAI(
        model=server.model, base_url=server.base_url, api_key="test", extra_body={"return_token_ids": True}
    )
    agent = create_react_agent(model, tools=[tool(lookup_weather)])
    return lambda: agent.ainvoke({"messages": [("user", QUESTION)]})


@pytest.mark.parametrize("agl_openai", [False, True], ids=["openinference-only", "with-agl-openai"])
async def test_langgraph_agent_traced_by_openinference(
    agl_openai: bool, server: ServerProcess, scripted: OpenAIServer
) -> None:
    pytest.importorskip("langgraph", reason="the instrument-langchain extra is not installed")
    for tracer in make_tracer("langchain", agl_openai=agl_openai):
        triplets = await traced_run(tracer, server, langgraph_agent(scripted))
    # With agl's OpenAI spans below the framework's, the calls come from agl's (token ids and all).
    check_two_turns(triplets, "agl" if agl_openai else "openinference", scripted, token_ids=agl_openai)


# --- the OpenAI Agents SDK (OpenInference's instrumentation) --------------------------------------


def openai_agents_agent(server: OpenAIServer) -> Callable[[], Awaitable[Any]]:
    import openai
    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool

    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test")
    agent = Agent(
        name="weather",
        instructions="Answer with the weather.",
        model=OpenAIChatCompletionsModel(model=server.model, openai_client=client),
        tools=[function_tool(lookup_weather)],
    )
    return lambda: Runner.run(agent, QUESTION)


async def test_openai_agents_sdk_traced_by_openinference(server: ServerProcess, scripted: OpenAIServer) -> None:
    pytest.importorskip("agents", reason="the instrument-openai-agents extra is not installed")
    for tracer in make_tracer("openai-agents", agl_openai=False):
        triplets = await traced_run(tracer, server, openai_agents_agent(scripted))
    check_two_turns(triplets, "openinference", scripted, token_ids=False)
    assert triplets[0].prompt.content[0] == {"role": "system", "content": "Answer with the weather."}
    assert triplets[0].metadata["agent_name"] == "weather"


# --- openai-python (OpenTelemetry contrib's openai-v2: GenAI conventions) -------------------------


def plain_openai_agent(server: OpenAIServer) -> Callable[[], Awaitable[Any]]:
    import openai

    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test")
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup_weather",
                "description": "Look up the weather of a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]

    async def run() -> None:
        messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
        first = await client.chat.completions.create(model=server.model, messages=messages, tools=tools)
        call = first.choices[0].message.tool_calls[0]
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        result = lookup_weather(**json.loads(call.function.arguments))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        await client.chat.completions.create(model=server.model, messages=messages, tools=tools)

    return run


async def test_openai_traced_by_contrib_openai_v2(server: ServerProcess, scripted: OpenAIServer) -> None:
    pytest.importorskip("opentelemetry.instrumentation.openai_v2", reason="instrument-openai-v2 not installed")
    for tracer in make_tracer("openai-v2", agl_openai=False):
        triplets = await traced_run(tracer, server, plain_openai_agent(scripted))
    check_two_turns(triplets, "gen_ai.events", scripted, token_ids=False)
    assert triplets[0].metadata["usage"]["prompt_tokens"] > 0


# --- LiteLLM (OpenInference's instrumentation) ----------------------------------------------------


def litellm_agent(server: OpenAIServer) -> Callable[[], Awaitable[Any]]:
    import litellm

    tools = [{"type": "function", "function": {"name": "lookup_weather", "parameters": {"type": "object"}}}]
    kwargs = {"model": f"openai/{server.model}", "api_base": server.base_url, "api_key": "test", "tools": tools}

    async def run() -> None:
        messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
        first = await litellm.acompletion(messages=messages, **kwargs)
        call = first.choices[0].message.tool_calls[0]
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": lookup_weather("Paris")})
        await litellm.acompletion(messages=messages, **kwargs)

    return run


async def test_litellm_traced_by_openinference(
    server: ServerProcess, scripted: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of the cost map
    pytest.importorskip("litellm", reason="the instrument-litellm extra is not installed")
    for tracer in make_tracer("litellm", agl_openai=False):
        triplets = await traced_run(tracer, server, litellm_agent(scripted))
    check_two_turns(triplets, "openinference", scripted, token_ids=False, tool_call_id=False)


def test_an_unknown_or_missing_instrumentation_is_named_with_its_extra() -> None:
    with pytest.raises(ValueError, match=r"unknown instrumentation 'langchian'; use one of .*langchain"):
        OtelTracer(instrument=["langchian"])
    # LlamaIndex's instrumentation is registered but not installed by the test extras.
    if importlib.util.find_spec("openinference.instrumentation.llama_index") is not None:
        pytest.skip("openinference-instrumentation-llama-index is installed here")
    with pytest.raises(ImportError, match=r"pip install 'agl\[instrument-llama-index\]'"):
        OtelTracer(instrument=["llama-index"])


async def test_instrumentations_are_turned_off_on_teardown(server: ServerProcess, scripted: OpenAIServer) -> None:
    pytest.importorskip("opentelemetry.instrumentation.openai_v2", reason="instrument-openai-v2 not installed")
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    for _tracer in make_tracer("openai-v2", agl_openai=False):
        assert OpenAIInstrumentor().is_instrumented_by_opentelemetry
    assert not OpenAIInstrumentor().is_instrumented_by_opentelemetry
    await asyncio.sleep(0)


def agl_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "agl_core.cli", *args]


def test_agl_runner_instrument_flag_traces_a_langgraph_agent(server: ServerProcess, scripted: OpenAIServer) -> None:
    pytest.importorskip("langgraph", reason="the instrument-langchain extra is not installed")
    runner = subprocess.Popen(
        agl_command(
            "runner",
            "--server",
            server.address,
            "--agent",
            "framework_agents:langgraph_weather",
            "--instrument",
            "langchain",
            "--max-rollouts",
            "1",
        ),
        cwd=Path(__file__).parent,  # the agent's module is importable from the working directory
        stderr=subprocess.PIPE,
        text=True,
    )

    async def run() -> list[Triplet]:
        store = GrpcStore(server.address)
        try:
            task = {"question": QUESTION, "base_url": scripted.base_url, "model": scripted.model}
            [rollout] = await store.enqueue_rollouts([{"input": task}])
            [done] = await store.wait_for_rollouts([rollout.rollout_id], timeout=120)
            assert done.status == "succeeded"
            return TracerTraceToTriplet().adapt(await store.query_spans(rollout.rollout_id))
        finally:
            await store.close()

    try:
        triplets = asyncio.run(run())
        _, stderr = runner.communicate(timeout=60)  # --max-rollouts 1: it stops by itself
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    # agl's OpenAI instrumentation is on too (the runner's default): the calls come from its spans.
    check_two_turns(triplets, "agl", scripted, token_ids=False)
    assert runner.returncode == 0, stderr


def test_agl_runner_refuses_an_unknown_instrumentation(server: ServerProcess) -> None:
    done = subprocess.run(
        agl_command(
            "runner",
            "--server",
            server.address,
            "--agent",
            "framework_agents:langgraph_weather",
            "--instrument",
            "langchian",
        ),
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown instrumentation 'langchian'" in done.stderr


# --- the Anthropic SDK (OpenInference's instrumentation), through the LLM proxy's /v1/messages -----


def anthropic_agent(base_url: str) -> Callable[[], Awaitable[Any]]:
    import anthropic

    client = anthropic.AsyncAnthropic(base_url=base_url, api_key="test", max_retries=0)
    tools = [
        {
            "name": "lookup_weather",
            "description": "Look up the weather of a city.",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]

    async def run() -> None:
        messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
        first = await client.messages.create(model="m", max_tokens=64, messages=messages, tools=tools)
        [use] = [block for block in first.content if block.type == "tool_use"]
        messages.append({"role": "assistant", "content": [block.model_dump() for block in first.content]})
        result = lookup_weather(**use.input)
        messages.append(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": result}]}
        )
        await client.messages.create(model="m", max_tokens=64, messages=messages, tools=tools)
        await client.close()

    return run


async def test_anthropic_sdk_traced_by_openinference(server: ServerProcess, scripted: OpenAIServer) -> None:
    pytest.importorskip("openinference.instrumentation.anthropic", reason="instrument-anthropic not installed")
    from agl_llm_proxy import LLMProxy

    async with LLMProxy([scripted.base_url]) as proxy:  # Messages API in front of the chat server
        for tracer in make_tracer("anthropic", agl_openai=False):
            triplets = await traced_run(tracer, server, anthropic_agent(proxy.url))
    check_two_turns(triplets, "openinference", scripted, token_ids=False)
