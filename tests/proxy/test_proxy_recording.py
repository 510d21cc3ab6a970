"""The LLM proxy records every call of an attempt as a span, token ids included, streamed or not,
and the span is in the store by the time the caller has its answer."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest
from agl_llm_proxy import LLMProxy
from agl_llm_proxy.cli import main as cli_main  # noqa: F401  (the console script's target must import)
from support.openai_server import OpenAIServer

from agl_core import semconv
from agl_core.adapter import TracerTraceToTriplet
from agl_core.client import GrpcStore
from agl_core.proto.trace_pb2 import SpanStatusCode
from agl_core.types import span_attributes

QUESTION = [{"role": "user", "content": "what is two plus two"}]
ANSWER = "echo: what is two plus two"


async def _attempt(store: GrpcStore) -> tuple[str, str]:
    rollout = await store.start_rollout({"question": "2+2"})
    assert rollout.attempt is not None
    return rollout.rollout_id, rollout.attempt.attempt_id


def _client(proxy: LLMProxy, rollout_id: str, attempt_id: str) -> openai.AsyncOpenAI:
    base_url = proxy.as_resource("agl-test-model").get_base_url(rollout_id, attempt_id)
    return openai.AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0)


async def test_streamed_chat_keeps_token_ids(
    proxy: LLMProxy, grpc_store: GrpcStore, openai_server: OpenAIServer
) -> None:
    rollout_id, attempt_id = await _attempt(grpc_store)
    client = _client(proxy, rollout_id, attempt_id)
    stream = await client.chat.completions.create(model=openai_server.model, messages=QUESTION, stream=True)
    chunks = [chunk async for chunk in stream]
    # The caller gets the text as streamed and not the usage chunk the proxy asked for on its own.
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert all(c.choices for c in chunks)
    sent = openai_server.requests[-1]
    assert sent["return_token_ids"] is True and sent["stream_options"] == {"include_usage": True}

    # No flush, no wait: the span was acknowledged before the stream's end reached the caller.
    [span] = await grpc_store.query_spans(rollout_id)
    attributes = span_attributes(span)
    prompt_ids = openai_server.prompt_token_ids(QUESTION)
    response_ids = openai_server.response_token_ids(ANSWER)
    assert span.attempt_id == attempt_id
    assert span.name == f"chat {openai_server.model}"
    assert attributes[semconv.LLM_PROMPT_TOKEN_IDS] == prompt_ids
    assert attributes[semconv.LLM_RESPONSE_TOKEN_IDS] == response_ids
    assert attributes[semconv.LLM_STREAM] is True
    assert attributes[semconv.GEN_AI_INPUT_TOKENS] == len(prompt_ids)
    assert attributes[semconv.GEN_AI_OUTPUT_TOKENS] == len(response_ids)
    assert attributes[semconv.GEN_AI_FINISH_REASONS] == ["stop"]
    assert attributes[semconv.LLM_PROXY_BACKEND] == openai_server.base_url.removesuffix("/v1")
    assert attributes[semconv.HTTP_RESPONSE_STATUS_CODE] == 200
    assert span.status.code == SpanStatusCode.SPAN_STATUS_CODE_OK
    response = json.loads(attributes[semconv.LLM_RESPONSE])
    assert response["choices"][0]["message"] == {"role": "assistant", "content": ANSWER}

    # The adapters read proxy spans as they read instrumented ones.
    [triplet] = TracerTraceToTriplet().adapt([span])
    assert (triplet.prompt.token_ids, triplet.response.token_ids) == (prompt_ids, response_ids)
    assert triplet.prompt.content == QUESTION


async def test_stream_that_asked_for_usage_gets_it(
    proxy: LLMProxy, grpc_store: GrpcStore, openai_server: OpenAIServer
) -> None:
    rollout_id, attempt_id = await _attempt(grpc_store)
    client = _client(proxy, rollout_id, attempt_id)
    stream = await client.chat.completions.create(
        model=openai_server.model, messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == len(openai_server.prompt_token_ids(QUESTION))


async def test_plain_chat_and_text_completions(
    proxy: LLMProxy, grpc_store: GrpcStore, openai_server: OpenAIServer
) -> None:
    rollout_id, attempt_id = await _attempt(grpc_store)
    client = _client(proxy, rollout_id, attempt_id)
    reply = await client.chat.completions.create(model=openai_server.model, messages=QUESTION, temperature=0.5)
    assert reply.choices[0].message.content == ANSWER
    text = await client.completions.create(model=openai_server.model, prompt="one two three", max_tokens=8)
    assert text.choices[0].text == "echo: one two three"
    streamed = await client.completions.create(model=openai_server.model, prompt="four five", stream=True)
    assert "".join([c.choices[0].text async for c in streamed if c.choices]) == "echo: four five"

    chat, plain, stream = await grpc_store.query_spans(rollout_id)
    chat_attributes = span_attributes(chat)
    assert chat_attributes[semconv.GEN_AI_OPERATION] == semconv.GEN_AI_OPERATION_CHAT
    assert chat_attributes[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert chat_attributes[semconv.GEN_AI_RESPONSE_ID] == reply.id
    assert chat_attributes[semconv.LLM_RESPONSE_TOKEN_IDS] == openai_server.response_token_ids(ANSWER)
    for span, prompt, answer in (
        (plain, "one two three", "echo: one two three"),
        (stream, "four five", "echo: four five"),
    ):
        attributes = span_attributes(span)
        assert attributes[semconv.GEN_AI_OPERATION] == semconv.GEN_AI_OPERATION_TEXT_COMPLETION
        assert attributes[semconv.LLM_PROMPT_TOKEN_IDS] == [1, *openai_server.token_ids(prompt)]
        assert attributes[semconv.LLM_RESPONSE_TOKEN_IDS] == openai_server.response_token_ids(answer)
    assert span_attributes(plain)[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 8
    assert [t.response.token_ids for t in TracerTraceToTriplet().adapt([chat, plain, stream])] == [
        openai_server.response_token_ids(a) for a in (ANSWER, "echo: one two three", "echo: four five")
    ]


async def test_traceparent_makes_the_span_a_child_of_the_caller(
    proxy: LLMProxy, grpc_store: GrpcStore, openai_server: OpenAIServer
) -> None:
    rollout_id, attempt_id = await _attempt(grpc_store)
    trace_id, parent_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    client = _client(proxy, rollout_id, attempt_id)
    await client.chat.completions.create(
        model=openai_server.model,
        messages=QUESTION,
        extra_headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
    )
    [span] = await grpc_store.query_spans(rollout_id)
    assert (span.trace_id.hex(), span.parent_span_id.hex()) == (trace_id, parent_id)
    assert openai_server.requests[-1]["return_token_ids"] is True


async def test_calls_outside_a_rollout_pass_through_unrecorded(
    proxy: LLMProxy, grpc_store: GrpcStore, openai_server: OpenAIServer
) -> None:
    client = openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="test", max_retries=0)
    reply = await client.chat.completions.create(model=openai_server.model, messages=QUESTION)
    assert reply.choices[0].message.content == ANSWER
    models = await client.models.list()
    assert [m.id for m in models.data] == [openai_server.model]
    rollout_id, attempt_id = await _attempt(grpc_store)
    scoped = await _client(proxy, rollout_id, attempt_id).models.list()
    assert [m.id for m in scoped.data] == [openai_server.model]
    assert await grpc_store.query_spans(rollout_id) == []
    assert proxy.counters["recorded"] == 0 and proxy.counters["calls"] == 1


async def test_unknown_route_and_malformed_bodies(
    proxy: LLMProxy, grpc_store: GrpcStore, openai_server: OpenAIServer
) -> None:
    rollout_id, attempt_id = await _attempt(grpc_store)
    base = f"{proxy.url}/rollout/{rollout_id}/attempt/{attempt_id}/v1"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/embeddings", json={"input": "x"}) as resp:
            assert resp.status == 404
            assert "no route POST" in (await resp.json())["error"]["message"]
        async with http.get(f"{base}/chat/completions") as resp:
            assert resp.status == 405
        async with http.post(f"{base}/chat/completions", data=b"{not json") as resp:
            assert resp.status == 400
            assert "not JSON" in (await resp.json())["error"]["message"]
        async with http.post(f"{base}/chat/completions", json=[1, 2]) as resp:
            assert resp.status == 400
            assert "JSON object" in (await resp.json())["error"]["message"]
        async with http.post(f"{base}/completions", json={"model": "m"}) as resp:
            assert resp.status == 400
            assert "'prompt' is required" in (await resp.json())["error"]["message"]
    assert openai_server.requests == []  # nothing malformed reached the backend
    spans = await grpc_store.query_spans(rollout_id)
    assert len(spans) == 3  # one failed span per malformed call of the attempt; none for bad routes
    for span in spans:
        assert span.status.code == SpanStatusCode.SPAN_STATUS_CODE_ERROR
        assert span_attributes(span)[semconv.HTTP_RESPONSE_STATUS_CODE] == 400
        assert span_attributes(span)[semconv.LLM_ERROR] == span.status.message
    assert TracerTraceToTriplet(skip_without_token_ids=True).adapt(spans) == []


async def test_backend_errors_pass_through_and_are_recorded(
    proxy: LLMProxy, grpc_store: GrpcStore, openai_server: OpenAIServer
) -> None:
    rollout_id, attempt_id = await _attempt(grpc_store)
    openai_server.fail_next(status=429, message="slow down")
    client = _client(proxy, rollout_id, attempt_id)
    with pytest.raises(openai.RateLimitError, match="slow down"):
        await client.chat.completions.create(model=openai_server.model, messages=QUESTION)
    [span] = await grpc_store.query_spans(rollout_id)
    attributes = span_attributes(span)
    assert attributes[semconv.HTTP_RESPONSE_STATUS_CODE] == 429
    assert attributes[semconv.LLM_ERROR] == "backend answered HTTP 429: slow down"
    assert span.status.code == SpanStatusCode.SPAN_STATUS_CODE_ERROR
    assert proxy.counters["backend_errors"] == 1


async def test_spans_of_unknown_attempts_are_counted_not_fatal(
    proxy: LLMProxy, grpc_store: GrpcStore, openai_server: OpenAIServer
) -> None:
    client = _client(proxy, "ro-missing", "at-missing")
    reply = await client.chat.completions.create(model=openai_server.model, messages=QUESTION)
    assert reply.choices[0].message.content == ANSWER
    assert proxy.counters["rejected"] == 1 and proxy.counters["recorded"] == 0
