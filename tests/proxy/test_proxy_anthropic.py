"""The Anthropic Messages API on the LLM proxy, driven by the real Anthropic SDK: translated into
chat completions for the OpenAI-compatible test server (stream and not, with tool use), or passed
through to a backend that serves it natively; recorded in a real agl-server like chat calls."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import anthropic
import pytest
from agl_llm_proxy import LLMProxy, ProxyConfig
from support.openai_server import OpenAIServer

from agl_core import semconv
from agl_core.adapter import TracerTraceToTriplet
from agl_core.client import GrpcStore
from agl_core.proto.trace_pb2 import SpanStatusCode
from agl_core.types import span_attributes

QUESTION = "what is the weather in Paris"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TOOL_CALL = {"name": "get_weather", "arguments": '{"city": "Paris"}'}


async def _attempt(store: GrpcStore) -> tuple[str, str]:
    rollout = await store.start_rollout({"question": QUESTION})
    assert rollout.attempt is not None
    return rollout.rollout_id, rollout.attempt.attempt_id


ClientFactory = Callable[..., anthropic.AsyncAnthropic]


@pytest.fixture
async def client_for() -> AsyncIterator[ClientFactory]:
    """Anthropic SDK clients of a proxy's attempt route, closed at the end (on the test's loop)."""
    made: list[anthropic.AsyncAnthropic] = []

    def make(proxy: LLMProxy, rollout_id: str, attempt_id: str, api_key: str = "test") -> anthropic.AsyncAnthropic:
        # The SDK appends /v1/messages to its base URL.
        base_url = f"{proxy.url}/rollout/{rollout_id}/attempt/{attempt_id}"
        made.append(anthropic.AsyncAnthropic(base_url=base_url, api_key=api_key, max_retries=0))
        return made[-1]

    yield make
    for client in made:
        await client.close()


async def _span_attributes(store: GrpcStore, rollout_id: str) -> dict[str, Any]:
    [span] = await store.query_spans(rollout_id)
    assert span.status.code == SpanStatusCode.SPAN_STATUS_CODE_OK, span.status.message
    return span_attributes(span)


async def test_plain_call_with_tool_use_is_translated_and_recorded(
    proxy: LLMProxy, grpc_store: GrpcStore, client_for: ClientFactory, openai_server: OpenAIServer
) -> None:
    rollout_id, attempt_id = await _attempt(grpc_store)
    client = client_for(proxy, rollout_id, attempt_id)
    openai_server.script({"content": "Let me look.", "tool_calls": [TOOL_CALL]})
    message = await client.messages.create(
        model=openai_server.model,
        max_tokens=64,
        system="You are a weather bot.",
        messages=[{"role": "user", "content": QUESTION}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "auto"},
        stop_sequences=["END"],
        extra_body={"temperature": 0.5},  # the API takes it; this SDK version has no argument for it
    )
    # The answer, in the Messages API's terms.
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[0].text == "Let me look."
    tool_use = message.content[1]
    assert (tool_use.id, tool_use.name, tool_use.input) == ("call_0_0", "get_weather", {"city": "Paris"})
    assert message.stop_reason == "tool_use" and message.role == "assistant"
    translated_messages = [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": QUESTION},
    ]
    prompt_ids = openai_server.prompt_token_ids(translated_messages)
    response_ids = openai_server.response_token_ids(
        "Let me look." + json.dumps(TOOL_CALL, sort_keys=True), finish_reason="tool_calls"
    )
    assert message.usage.input_tokens == len(prompt_ids)
    assert message.usage.output_tokens == len(response_ids)

    # What the OpenAI-compatible backend received.
    sent = openai_server.requests[-1]
    assert sent["messages"] == translated_messages
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER_TOOL["input_schema"],
                "description": "Current weather of a city",
            },
        }
    ]
    assert (sent["tool_choice"], sent["max_tokens"], sent["stop"], sent["temperature"]) == ("auto", 64, ["END"], 0.5)
    assert sent["return_token_ids"] is True

    # The span: chat bodies, token ids, the caller's API named.
    attributes = await _span_attributes(grpc_store, rollout_id)
    assert attributes[semconv.LLM_PROXY_API] == "anthropic"
    assert attributes[semconv.GEN_AI_OPERATION] == "chat"
    assert attributes[semconv.LLM_PROMPT_TOKEN_IDS] == prompt_ids
    assert attributes[semconv.LLM_RESPONSE_TOKEN_IDS] == response_ids
    assert attributes[semconv.GEN_AI_FINISH_REASONS] == ["tool_calls"]
    recorded = json.loads(attributes[semconv.LLM_RESPONSE])["choices"][0]["message"]
    assert recorded["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    [span] = await grpc_store.query_spans(rollout_id)
    [triplet] = TracerTraceToTriplet().adapt([span])
    assert (triplet.prompt.token_ids, triplet.response.token_ids) == (prompt_ids, response_ids)


async def test_tool_results_and_images_are_translated(
    proxy: LLMProxy, grpc_store: GrpcStore, client_for: ClientFactory, openai_server: OpenAIServer
) -> None:
    rollout_id, attempt_id = await _attempt(grpc_store)
    client = client_for(proxy, rollout_id, attempt_id)
    message = await client.messages.create(
        model=openai_server.model,
        max_tokens=64,
        messages=[
            {"role": "user", "content": QUESTION},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
                    {"type": "text", "text": "and tomorrow"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                ],
            },
        ],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    )
    assert message.content[0].text == "echo: and tomorrow" and message.stop_reason == "end_turn"
    sent = openai_server.requests[-1]
    assert sent["messages"] == [
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "and tomorrow"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
            ],
        },
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    attributes = await _span_attributes(grpc_store, rollout_id)
    assert attributes[semconv.LLM_PROMPT_TOKEN_IDS] == openai_server.prompt_token_ids(sent["messages"])


async def test_streamed_call_gives_anthropic_events_and_is_recorded(
    proxy: LLMProxy, grpc_store: GrpcStore, client_for: ClientFactory, openai_server: OpenAIServer
) -> None:
    rollout_id, attempt_id = await _attempt(grpc_store)
    client = client_for(proxy, rollout_id, attempt_id)
    openai_server.script({"content": "Let me look it up.", "tool_calls": [TOOL_CALL]})
    kinds: list[str] = []
    async with client.messages.stream(
        model=openai_server.model,
        max_tokens=64,
        messages=[{"role": "user", "content": QUESTION}],
        tools=[WEATHER_TOOL],
    ) as stream:
        async for event in stream:
            kinds.append(event.type)
        message = await stream.get_final_message()
    # The Messages API's event order: one start, blocks opened and closed, the stop reason, the end.
    raw = [k for k in kinds if k not in ("text", "input_json")]  # the SDK's own convenience events
    assert raw[0] == "message_start" and raw[-2:] == ["message_delta", "message_stop"]
    assert raw.count("content_block_start") == raw.count("content_block_stop") == 2
    assert message.content[0].type == "text" and message.content[0].text == "Let me look it up."
    assert message.content[1].type == "tool_use" and message.content[1].input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"
    response_ids = openai_server.response_token_ids(
        "Let me look it up." + json.dumps(TOOL_CALL, sort_keys=True), finish_reason="tool_calls"
    )
    prompt_ids = openai_server.prompt_token_ids([{"role": "user", "content": QUESTION}])
    assert (message.usage.input_tokens, message.usage.output_tokens) == (len(prompt_ids), len(response_ids))

    # Recorded before the stream's end reached the SDK: no wait needed.
    attributes = await _span_attributes(grpc_store, rollout_id)
    assert attributes[semconv.LLM_STREAM] is True
    assert attributes[semconv.LLM_PROMPT_TOKEN_IDS] == prompt_ids
    assert attributes[semconv.LLM_RESPONSE_TOKEN_IDS] == response_ids
    recorded = json.loads(attributes[semconv.LLM_RESPONSE])["choices"][0]["message"]
    assert recorded["content"] == "Let me look it up."
    assert recorded["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'


async def test_streamed_text_with_create(
    proxy: LLMProxy, grpc_store: GrpcStore, client_for: ClientFactory, openai_server: OpenAIServer
) -> None:
    rollout_id, attempt_id = await _attempt(grpc_store)
    client = client_for(proxy, rollout_id, attempt_id)
    events = await client.messages.create(
        model=openai_server.model, max_tokens=64, messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    text = ""
    stop_reason = None
    async for event in events:
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            text += event.delta.text
        if event.type == "message_delta":
            stop_reason = event.delta.stop_reason
    assert text == f"echo: {QUESTION}" and stop_reason == "end_turn"
    attributes = await _span_attributes(grpc_store, rollout_id)
    assert attributes[semconv.LLM_RESPONSE_TOKEN_IDS] == openai_server.response_token_ids(f"echo: {QUESTION}")


@pytest.fixture
async def native_proxy(grpc_store: GrpcStore, openai_server: OpenAIServer) -> AsyncIterator[LLMProxy]:
    """A recording proxy in front of a backend that serves /v1/messages natively: here another agl
    proxy (translating, recording nothing) in front of the OpenAI-compatible test server."""
    async with LLMProxy([openai_server.base_url]) as native_backend:
        config = ProxyConfig(native_messages=True, request_token_ids=False)
        async with LLMProxy([native_backend.url], store=grpc_store, config=config) as running:
            yield running


@pytest.mark.parametrize("stream", [False, True])
async def test_native_backends_are_passed_through_and_recorded(
    native_proxy: LLMProxy, grpc_store: GrpcStore, client_for: ClientFactory, openai_server: OpenAIServer, stream: bool
) -> None:
    rollout_id, attempt_id = await _attempt(grpc_store)
    client = client_for(native_proxy, rollout_id, attempt_id)
    openai_server.script({"content": "Checking.", "tool_calls": [TOOL_CALL]})
    request: dict[str, Any] = {
        "model": openai_server.model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": QUESTION}],
        "tools": [WEATHER_TOOL],
    }
    if stream:
        async with client.messages.stream(**request) as events:
            message = await events.get_final_message()
    else:
        message = await client.messages.create(**request)
    assert message.content[0].text == "Checking." and message.content[1].input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"
    # The native backend got the Messages request itself (the test server behind it, its translation).
    assert openai_server.requests[-1]["tools"][0]["function"]["name"] == "get_weather"
    attributes = await _span_attributes(grpc_store, rollout_id)
    assert attributes[semconv.LLM_PROXY_API] == "anthropic"
    assert attributes[semconv.LLM_STREAM] is stream
    assert json.loads(attributes[semconv.LLM_REQUEST])["messages"] == [{"role": "user", "content": QUESTION}]
    recorded = json.loads(attributes[semconv.LLM_RESPONSE])
    assert recorded["choices"][0]["message"]["content"] == "Checking."
    assert recorded["choices"][0]["finish_reason"] == "tool_calls"
    assert attributes[semconv.GEN_AI_OUTPUT_TOKENS] == message.usage.output_tokens > 0


async def _post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "the request body is not JSON"),
        (json.dumps([1]).encode(), "must be a JSON object"),
        (json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode(), "max_tokens"),
        (json.dumps({"model": "m", "max_tokens": 5, "messages": []}).encode(), "messages"),
        (
            json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}).encode(),
            "messages.0.role",
        ),
        (
            json.dumps(
                {
                    "model": "m",
                    "max_tokens": 5,
                    "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}],
                }
            ).encode(),
            "content block type 'document'",
        ),
        (
            json.dumps(
                {
                    "model": "m",
                    "max_tokens": 5,
                    "messages": [{"role": "user", "content": "x"}],
                    "tools": [{"type": "web_search_20250305", "name": "web_search"}],
                }
            ).encode(),
            "server tool 'web_search_20250305'",
        ),
    ],
)
async def test_bad_requests_get_400_in_anthropic_shape(
    proxy: LLMProxy, grpc_store: GrpcStore, openai_server: OpenAIServer, body: bytes, needle: str
) -> None:
    rollout_id, attempt_id = await _attempt(grpc_store)
    status, answer = await _post(f"{proxy.url}/rollout/{rollout_id}/attempt/{attempt_id}/v1/messages", body)
    assert status == 400
    assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
    assert needle in answer["error"]["message"]
    assert openai_server.requests == []  # nothing reached the backend
    [span] = await grpc_store.query_spans(rollout_id)  # the refused call is recorded as an error
    assert span.status.code == SpanStatusCode.SPAN_STATUS_CODE_ERROR
    assert needle in span_attributes(span)[semconv.LLM_ERROR]


async def test_the_sdk_sees_anthropic_errors(
    proxy: LLMProxy, grpc_store: GrpcStore, client_for: ClientFactory, openai_server: OpenAIServer
) -> None:
    rollout_id, attempt_id = await _attempt(grpc_store)
    client = client_for(proxy, rollout_id, attempt_id)
    with pytest.raises(anthropic.BadRequestError) as bad:
        await client.messages.create(model="m", max_tokens=0, messages=[{"role": "user", "content": "x"}])
    assert bad.value.status_code == 400 and bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    openai_server.fail_next(500, "the GPU fell over")
    with pytest.raises(anthropic.InternalServerError) as failed:
        await client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert failed.value.body["error"] == {  # type: ignore[index]
        "type": "api_error",
        "message": "backend answered HTTP 500: the GPU fell over",
    }
    status, answer = await _post(f"{proxy.url}/v1/messages/count", b"{}")
    assert status == 404 and answer["type"] == "error" and answer["error"]["type"] == "not_found_error"


async def test_proxy_token_is_taken_as_the_sdk_api_key(
    grpc_store: GrpcStore, client_for: ClientFactory, openai_server: OpenAIServer
) -> None:
    config = ProxyConfig(token="s3cret")
    async with LLMProxy([openai_server.base_url], store=grpc_store, config=config) as proxy:
        rollout_id, attempt_id = await _attempt(grpc_store)
        with pytest.raises(anthropic.AuthenticationError) as denied:
            await client_for(proxy, rollout_id, attempt_id, api_key="wrong").messages.create(
                model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert denied.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
        message = await client_for(proxy, rollout_id, attempt_id, api_key="s3cret").messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
        assert message.content[0].text == "echo: hi"
        assert "x-api-key" not in {k.lower() for k in openai_server.requests[-1]}  # (body keys: sanity)
