"""Every openai completion inside a trace context becomes a span, against a real HTTP server."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.resources.chat import completions as chat_resources
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support.openai_server import OpenAIServer

from agl_core import semconv
from agl_core.instrumentation import instrument_openai, is_instrumented, uninstrument_openai
from agl_core.proto import trace_pb2
from agl_core.tracer import OtelTracer
from agl_core.tracer.otel import install
from agl_core.types import span_attributes

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what is two plus two"}]
IDS = {"return_token_ids": True}


def llm_spans(spans: list[trace_pb2.Span]) -> list[dict[str, Any]]:
    return [span_attributes(s) for s in spans if s.name.startswith(("chat ", "text_completion "))]


def test_chat_completion_records_request_response_usage_and_token_ids(
    tracer: OtelTracer, openai_server: OpenAIServer
) -> None:
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test")
    with tracer.trace_context_sync("agent") as trace_:
        response = client.chat.completions.create(
            model=openai_server.model,
            messages=MESSAGES,
            temperature=0.5,
            max_tokens=64,
            logprobs=True,
            extra_body=IDS,
        )
    assert response.choices[0].message.content == "echo: what is two plus two"
    [span] = [s for s in trace_.spans if s.name == f"chat {openai_server.model}"]
    assert span.kind == trace_pb2.SPAN_KIND_CLIENT
    root = next(s for s in trace_.spans if s.name == "agent")
    assert span.parent_span_id == root.span_id
    attributes = span_attributes(span)
    expected_response_ids = openai_server.response_token_ids("echo: what is two plus two")
    assert attributes[semconv.LLM_PROMPT_TOKEN_IDS] == openai_server.prompt_token_ids(MESSAGES)
    assert attributes[semconv.LLM_RESPONSE_TOKEN_IDS] == expected_response_ids
    assert attributes[semconv.GEN_AI_OPERATION] == "chat"
    assert attributes[semconv.GEN_AI_REQUEST_MODEL] == openai_server.model
    assert attributes[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == response.id
    assert attributes[semconv.GEN_AI_FINISH_REASONS] == ["stop"]
    assert attributes[semconv.GEN_AI_INPUT_TOKENS] == len(openai_server.prompt_token_ids(MESSAGES))
    assert attributes[semconv.GEN_AI_OUTPUT_TOKENS] == len(expected_response_ids)
    assert attributes[semconv.LLM_STREAM] is False
    assert attributes[semconv.LLM_ENDPOINT].startswith(openai_server.base_url)
    assert len(attributes[semconv.LLM_RESPONSE_LOGPROBS]) == len(expected_response_ids)
    request = json.loads(attributes[semconv.LLM_REQUEST])
    assert request["messages"] == MESSAGES and request["return_token_ids"] is True
    assert json.loads(attributes[semconv.LLM_RESPONSE])["choices"][0]["message"]["content"] == (
        "echo: what is two plus two"
    )


def test_streamed_chat_keeps_token_ids_and_tool_calls(tracer: OtelTracer, openai_server: OpenAIServer) -> None:
    openai_server.script(
        {"content": "let me look that up", "tool_calls": [{"name": "search", "arguments": '{"q":"2+2"}'}]}
    )
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test")
    with tracer.trace_context_sync() as trace_:
        stream = client.chat.completions.create(
            model=openai_server.model,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=IDS,
        )
        chunks = list(stream)
    assert len(chunks) > 3  # really streamed in pieces
    [attributes] = llm_spans(trace_.spans)
    text = 'let me look that up{"arguments": "{\\"q\\":\\"2+2\\"}", "name": "search"}'
    assert attributes[semconv.LLM_RESPONSE_TOKEN_IDS] == openai_server.response_token_ids(text, "tool_calls")
    assert attributes[semconv.LLM_PROMPT_TOKEN_IDS] == openai_server.prompt_token_ids(MESSAGES)
    assert attributes[semconv.LLM_STREAM] is True
    assert attributes[semconv.GEN_AI_FINISH_REASONS] == ["tool_calls"]
    message = json.loads(attributes[semconv.LLM_RESPONSE])["choices"][0]["message"]
    assert message["content"] == "let me look that up"
    assert message["tool_calls"] == [
        {"id": "call_0_0", "type": "function", "function": {"name": "search", "arguments": '{"q":"2+2"}'}}
    ]
    assert attributes[semconv.GEN_AI_OUTPUT_TOKENS] == len(attributes[semconv.LLM_RESPONSE_TOKEN_IDS])


async def test_async_calls_plain_and_streamed(tracer: OtelTracer, openai_server: OpenAIServer) -> None:
    client = openai.AsyncOpenAI(base_url=openai_server.base_url, api_key="test")
    async with tracer.trace_context() as trace_:
        plain = await client.chat.completions.create(model=openai_server.model, messages=MESSAGES, extra_body=IDS)
        stream = await client.chat.completions.create(
            model=openai_server.model, messages=MESSAGES, stream=True, extra_body=IDS, logprobs=True
        )
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        text = await client.completions.create(model=openai_server.model, prompt="count to three", extra_body=IDS)
    assert "".join(pieces) == plain.choices[0].message.content == "echo: what is two plus two"
    spans = llm_spans(trace_.spans)
    assert [a[semconv.GEN_AI_OPERATION] for a in spans] == ["chat", "chat", "text_completion"]
    expected = openai_server.response_token_ids("echo: what is two plus two")
    assert spans[0][semconv.LLM_RESPONSE_TOKEN_IDS] == spans[1][semconv.LLM_RESPONSE_TOKEN_IDS] == expected
    assert spans[1][semconv.LLM_RESPONSE_LOGPROBS] == [-((i % 7) + 1) / 10 for i in range(len(expected))]
    assert spans[2][semconv.LLM_PROMPT_TOKEN_IDS] == [1, *openai_server.token_ids("count to three")]
    assert spans[2][semconv.LLM_RESPONSE_TOKEN_IDS] == openai_server.response_token_ids(text.choices[0].text)


def test_streamed_text_completion_and_stream_helper(tracer: OtelTracer, openai_server: OpenAIServer) -> None:
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test")
    with tracer.trace_context_sync() as trace_:
        text = "".join(
            c.choices[0].text
            for c in client.completions.create(
                model=openai_server.model, prompt="a b c d e", stream=True, extra_body=IDS
            )
            if c.choices
        )
        with client.chat.completions.stream(model=openai_server.model, messages=MESSAGES, extra_body=IDS) as stream:
            final = stream.get_final_completion()
    completion, helper = llm_spans(trace_.spans)
    assert text == "echo: a b c d e"
    assert completion[semconv.LLM_PROMPT_TOKEN_IDS] == [1, *openai_server.token_ids("a b c d e")]
    assert completion[semconv.LLM_RESPONSE_TOKEN_IDS] == openai_server.response_token_ids(text)
    assert helper[semconv.GEN_AI_RESPONSE_ID] == final.id
    assert helper[semconv.LLM_RESPONSE_TOKEN_IDS] == openai_server.response_token_ids(final.choices[0].message.content)


def test_stream_closed_early_still_ends_its_span(tracer: OtelTracer, openai_server: OpenAIServer) -> None:
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test")
    openai_server.script("one two three four five six seven eight")
    with tracer.trace_context_sync() as trace_:
        with client.chat.completions.create(
            model=openai_server.model, messages=MESSAGES, stream=True, extra_body=IDS
        ) as stream:
            first = next(iter(stream))
    assert first.choices[0].delta.content == "one two "
    [attributes] = llm_spans(trace_.spans)
    assert attributes[semconv.LLM_RESPONSE_TOKEN_IDS] == openai_server.token_ids("one two ")


def test_failed_call_is_an_error_span_and_still_raises(tracer: OtelTracer, openai_server: OpenAIServer) -> None:
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test", max_retries=0)
    openai_server.fail_next(500, "the model fell over")
    with tracer.trace_context_sync() as trace_:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model=openai_server.model, messages=MESSAGES)
    [span] = [s for s in trace_.spans if s.name.startswith("chat ")]
    assert span.status.code == trace_pb2.SPAN_STATUS_CODE_ERROR
    assert "InternalServerError" in span_attributes(span)[semconv.LLM_ERROR]
    assert [e.name for e in span.events] == ["exception"]


def test_raw_response_is_recorded(tracer: OtelTracer, openai_server: OpenAIServer) -> None:
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test")
    with tracer.trace_context_sync() as trace_:
        raw = client.chat.completions.with_raw_response.create(
            model=openai_server.model, messages=MESSAGES, extra_body=IDS
        )
        parsed = raw.parse()
    [attributes] = llm_spans(trace_.spans)
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == parsed.id
    assert attributes[semconv.LLM_RESPONSE_TOKEN_IDS] == openai_server.response_token_ids(
        parsed.choices[0].message.content
    )


def test_request_token_ids_option_asks_the_server(openai_server: OpenAIServer) -> None:
    tracer = OtelTracer(request_token_ids=True)
    tracer.init()
    try:
        client = openai.OpenAI(base_url=openai_server.base_url, api_key="test")
        with tracer.trace_context_sync() as trace_:
            client.chat.completions.create(model=openai_server.model, messages=MESSAGES)
        client.chat.completions.create(model=openai_server.model, messages=MESSAGES)  # outside: untouched
    finally:
        tracer.teardown()
    assert openai_server.requests[0]["return_token_ids"] is True
    assert "return_token_ids" not in openai_server.requests[1]
    [attributes] = llm_spans(trace_.spans)
    assert attributes[semconv.LLM_RESPONSE_TOKEN_IDS] == openai_server.response_token_ids("echo: what is two plus two")


def test_no_trace_context_no_span_and_uninstrument_restores(openai_server: OpenAIServer) -> None:
    original = chat_resources.Completions.__dict__["create"]
    exported = InMemorySpanExporter()
    provider = install()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    instrument_openai()
    try:
        assert is_instrumented() and chat_resources.Completions.__dict__["create"] is not original
        client = openai.OpenAI(base_url=openai_server.base_url, api_key="test")
        response = client.chat.completions.create(model=openai_server.model, messages=MESSAGES)
        assert response.choices[0].message.content == "echo: what is two plus two"
        assert [s.name for s in exported.get_finished_spans() if s.name.startswith("chat")] == []
    finally:
        uninstrument_openai()
        exported.shutdown()
    assert not is_instrumented()
    assert chat_resources.Completions.__dict__["create"] is original


def test_messages_given_as_an_iterator_reach_the_server(tracer: OtelTracer, openai_server: OpenAIServer) -> None:
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test")
    with tracer.trace_context_sync() as trace_:
        client.chat.completions.create(model=openai_server.model, messages=iter(MESSAGES))
    assert openai_server.requests[-1]["messages"] == MESSAGES
    assert json.loads(llm_spans(trace_.spans)[0][semconv.LLM_REQUEST])["messages"] == MESSAGES
