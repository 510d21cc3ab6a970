"""One LLM call with a tool call, written in each supported convention, reads back the same.

The call: system + user message and a tool result in, an assistant message with a tool call out
(and, where the convention has it, usage, model and response id). Each form below is what the
convention's spec (or its instrumentations) writes; the triplet and messages adapters must give
the same prompt, response and reward for all of them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from agl_core import new_span, semconv
from agl_core.adapter import TracerTraceToTriplet, TraceToMessages
from agl_core.adapter.conventions import is_llm_span, read_llm_call, unflatten
from agl_core.emitter.reward import reward_attributes
from agl_core.proto.trace_pb2 import Span
from agl_core.types.values import attributes_dict, set_attributes

MS = 1_000_000
ARGS = '{"city": "Paris"}'
EXPECTED_PROMPT = [
    {"role": "system", "content": "You are a weather bot."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c0", "type": "function", "function": {"name": "lookup", "arguments": ARGS}}],
    },
    {"role": "tool", "tool_call_id": "c0", "content": "sunny"},
]
EXPECTED_REPLY = {
    "role": "assistant",
    "content": None,
    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "report", "arguments": ARGS}}],
}


def _span(attributes: dict[str, Any], events: list[tuple[str, dict[str, Any]]] = ()) -> Span:
    span = new_span(
        "chat m",
        rollout_id="ro-1",
        attempt_id="at-1",
        span_id=(1).to_bytes(8, "big"),
        trace_id=b"t" * 16,
        start_time_unix_nano=1 * MS,
        end_time_unix_nano=5 * MS,
        sequence_id=1,
        attributes=attributes,
    )
    for name, event_attributes in events:
        event = span.events.add(name=name, time_unix_nano=2 * MS)
        set_attributes(event, event_attributes)
    return span


def _reward(value: float) -> Span:
    return new_span(
        "agl.reward",
        rollout_id="ro-1",
        attempt_id="at-1",
        span_id=(2).to_bytes(8, "big"),
        trace_id=b"t" * 16,
        start_time_unix_nano=6 * MS,
        end_time_unix_nano=6 * MS,
        sequence_id=2,
        attributes=reward_attributes(value),
    )


def genai_current() -> Span:
    parts_in = [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "c0", "name": "lookup", "arguments": ARGS}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c0", "response": "sunny"}]},
    ]
    parts_out = [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c1", "name": "report", "arguments": {"city": "Paris"}}],
            "finish_reason": "tool_call",
        }
    ]
    return _span(
        {
            semconv.GEN_AI_OPERATION: "chat",
            semconv.GEN_AI_REQUEST_MODEL: "m",
            semconv.GEN_AI_RESPONSE_ID: "r-1",
            semconv.GEN_AI_INPUT_TOKENS: 12,
            semconv.GEN_AI_OUTPUT_TOKENS: 3,
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "You are a weather bot."}]),
            "gen_ai.input.messages": json.dumps(parts_in),
            "gen_ai.output.messages": json.dumps(parts_out),
            "gen_ai.tool.definitions": json.dumps([{"type": "function", "name": "report", "parameters": {}}]),
        }
    )


def genai_events() -> Span:
    tool_calls = json.dumps([{"id": "c0", "type": "function", "function": {"name": "lookup", "arguments": ARGS}}])
    choice = {
        "role": "assistant",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "report", "arguments": ARGS}}],
    }
    return _span(
        {
            semconv.GEN_AI_OPERATION: "chat",
            semconv.GEN_AI_REQUEST_MODEL: "m",
            semconv.GEN_AI_RESPONSE_ID: "r-1",
            "gen_ai.usage.prompt_tokens": 12,
            "gen_ai.usage.completion_tokens": 3,
        },
        [
            ("gen_ai.system.message", {"content": "You are a weather bot."}),
            ("gen_ai.user.message", {"content": "Weather in Paris?"}),
            ("gen_ai.assistant.message", {"tool_calls": tool_calls}),
            ("gen_ai.tool.message", {"content": "sunny", "id": "c0"}),
            ("gen_ai.choice", {"index": 0, "finish_reason": "tool_calls", "message": json.dumps(choice)}),
        ],
    )


def genai_flattened() -> Span:
    return _span(
        {
            semconv.GEN_AI_OPERATION: "chat",
            semconv.GEN_AI_REQUEST_MODEL: "m",
            semconv.GEN_AI_RESPONSE_ID: "r-1",
            semconv.GEN_AI_INPUT_TOKENS: 12,
            semconv.GEN_AI_OUTPUT_TOKENS: 3,
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "You are a weather bot.",
            "gen_ai.prompt.1.role": "user",
            "gen_ai.prompt.1.content": "Weather in Paris?",
            "gen_ai.prompt.2.role": "assistant",
            "gen_ai.prompt.2.tool_calls.0.id": "c0",
            "gen_ai.prompt.2.tool_calls.0.name": "lookup",
            "gen_ai.prompt.2.tool_calls.0.arguments": ARGS,
            "gen_ai.prompt.3.role": "tool",
            "gen_ai.prompt.3.content": "sunny",
            "gen_ai.prompt.3.tool_call_id": "c0",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.finish_reason": "tool_calls",
            "gen_ai.completion.0.tool_calls.0.id": "c1",
            "gen_ai.completion.0.tool_calls.0.name": "report",
            "gen_ai.completion.0.tool_calls.0.arguments": ARGS,
        }
    )


def openinference() -> Span:
    raw_response = {
        "id": "r-1",
        "model": "m",
        "prompt_token_ids": [1, 2, 3],
        "choices": [{"index": 0, "finish_reason": "tool_calls", "token_ids": [7, 8], "message": EXPECTED_REPLY}],
    }
    return _span(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "m",
            "llm.invocation_parameters": json.dumps({"temperature": 0.5}),
            "llm.token_count.prompt": 12,
            "llm.token_count.completion": 3,
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "You are a weather bot.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.contents.0.message_content.type": "text",
            "llm.input_messages.1.message.contents.0.message_content.text": "Weather in Paris?",
            "llm.input_messages.2.message.role": "assistant",
            "llm.input_messages.2.message.tool_calls.0.tool_call.id": "c0",
            "llm.input_messages.2.message.tool_calls.0.tool_call.function.name": "lookup",
            "llm.input_messages.2.message.tool_calls.0.tool_call.function.arguments": ARGS,
            "llm.input_messages.3.message.role": "tool",
            "llm.input_messages.3.message.content": "sunny",
            "llm.input_messages.3.message.tool_call_id": "c0",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.tool_calls.0.tool_call.id": "c1",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "report",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": ARGS,
            "llm.tools.0.tool.json_schema": json.dumps(
                {"type": "function", "function": {"name": "report", "parameters": {}}}
            ),
            "output.value": json.dumps(raw_response),
            "output.mime_type": "application/json",
        }
    )


FORMS = {
    "gen_ai": genai_current,
    "gen_ai.events": genai_events,
    "gen_ai.flattened": genai_flattened,
    "openinference": openinference,
}


@pytest.mark.parametrize("convention", FORMS)
def test_each_convention_reads_as_the_same_call(convention: str) -> None:
    span = FORMS[convention]()
    triplets = TracerTraceToTriplet().adapt([span, _reward(0.75)])
    assert len(triplets) == 1
    triplet = triplets[0]
    assert triplet.metadata["convention"] == convention
    assert triplet.prompt.content == EXPECTED_PROMPT
    assert triplet.response.content == EXPECTED_REPLY
    assert triplet.reward == 0.75
    assert triplet.metadata["response_id"] == "r-1"
    assert triplet.metadata["model"] == "m"
    assert triplet.metadata["usage"]["prompt_tokens"] == 12
    assert triplet.metadata["usage"]["completion_tokens"] == 3
    assert triplet.metadata["finish_reason"] in ("tool_call", "tool_calls")
    # Fine-tuning records: the prompt then the reply, tool calls intact.
    record = TraceToMessages().adapt([span])[0]
    assert record["messages"][-1]["tool_calls"][0]["function"] == {"name": "report", "arguments": ARGS}
    assert record["messages"][1] == {"role": "user", "content": "Weather in Paris?"}
    assert record["messages"][3]["tool_call_id"] == "c0"


def test_token_ids_come_from_the_raw_response_when_no_agl_attribute_has_them() -> None:
    triplet = TracerTraceToTriplet().adapt([openinference()])[0]
    assert triplet.prompt.token_ids == [1, 2, 3]
    assert triplet.response.token_ids == [7, 8]
    assert triplet.metadata["request"]["temperature"] == 0.5
    assert triplet.metadata["tools"][0]["function"]["name"] == "report"


def test_tool_definitions_of_the_current_form_become_openai_tools() -> None:
    span = genai_current()
    call = read_llm_call(span, attributes_dict(span))
    assert call.request["tools"] == [{"type": "function", "function": {"name": "report", "parameters": {}}}]


def test_a_duplicate_call_from_two_conventions_counts_once_keeping_token_ids() -> None:
    # A framework's OpenInference span and the LLM proxy's agl span of the same response.
    proxy = _span(
        {
            semconv.GEN_AI_OPERATION: "chat",
            semconv.GEN_AI_RESPONSE_ID: "r-1",
            semconv.LLM_REQUEST: json.dumps({"messages": EXPECTED_PROMPT}),
            semconv.LLM_RESPONSE: json.dumps({"id": "r-1", "choices": [{"message": EXPECTED_REPLY}]}),
            semconv.LLM_PROMPT_TOKEN_IDS: [1, 2, 3],
            semconv.LLM_RESPONSE_TOKEN_IDS: [9],
        }
    )
    proxy.span_id = (3).to_bytes(8, "big")
    framework = openinference()
    framework.ClearField("attributes")
    set_attributes(framework, {"openinference.span.kind": "LLM", "llm.output_messages.0.message.content": "x"})
    set_attributes(framework, {semconv.GEN_AI_RESPONSE_ID: "r-1"})
    triplets = TracerTraceToTriplet().adapt([framework, proxy])
    assert len(triplets) == 1
    assert triplets[0].response.token_ids == [9]
    assert triplets[0].metadata["convention"] == "agl"


def test_spans_of_other_kinds_are_not_llm_calls() -> None:
    assert is_llm_span({"openinference.span.kind": "LLM"})
    assert not is_llm_span({"openinference.span.kind": "CHAIN"})
    assert not is_llm_span({"gen_ai.operation.name": "execute_tool"})
    chain = _span({"openinference.span.kind": "CHAIN", "llm.input_messages.0.message.content": "hi"})
    assert TracerTraceToTriplet().adapt([chain]) == []


def test_unflatten_builds_lists_and_dicts_and_ignores_other_prefixes() -> None:
    attributes = {"p.1.a": 2, "p.0.a": 1, "p.0.b.0.c": "x", "pp.0.a": 9, "p.x": "y"}
    assert unflatten(attributes, "p") == {0: {"a": 1, "b": [{"c": "x"}]}, 1: {"a": 2}, "x": "y"}
    assert unflatten({"p.1.a": 2, "p.0.a": 1}, "p") == [{"a": 1}, {"a": 2}]
    assert unflatten({}, "p") == {}
