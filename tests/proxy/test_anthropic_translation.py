"""The Messages <-> chat completions translation on its own: the cases the test backend does not
produce (stop sequences as vLLM reports them, length cut-offs, tool arguments that are not JSON)."""

from __future__ import annotations

import json

import pytest
from agl_llm_proxy import anthropic
from agl_llm_proxy.anthropic_stream import EventWriter, MessageAccumulator
from agl_llm_proxy.errors import BadRequest

REQUEST = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}], "stop_sequences": ["##"]}


def _events(data: bytes) -> list[dict]:
    return [json.loads(line[6:]) for line in data.decode().splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize(
    ("finish_reason", "matched", "expected"),
    [
        ("stop", "##", ("stop_sequence", "##")),  # vLLM names the stop string in choice.stop_reason
        ("stop", None, ("end_turn", None)),
        ("stop", 2, ("end_turn", None)),  # an EOS token id, not a stop sequence
        ("length", None, ("max_tokens", None)),
        ("tool_calls", None, ("tool_use", None)),
    ],
)
def test_stop_reasons(finish_reason: str, matched: object, expected: tuple) -> None:
    response = {
        "id": "c1",
        "model": "m",
        "choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": finish_reason, "stop_reason": matched}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    message = anthropic.to_anthropic_message(response, REQUEST)
    assert (message["stop_reason"], message["stop_sequence"]) == expected
    assert message["usage"] == {"input_tokens": 3, "output_tokens": 1} and message["id"] == "msg_c1"


def test_tool_arguments_that_are_not_json_become_an_empty_input() -> None:
    response = {
        "choices": [
            {
                "message": {"tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{broken"}}]},
                "finish_reason": "tool_calls",
            }
        ]
    }
    [block] = anthropic.to_anthropic_message(response, REQUEST)["content"]
    assert block == {"type": "tool_use", "id": "t", "name": "f", "input": {}}


def test_a_stream_told_as_events_and_folded_back_is_the_message() -> None:
    writer = EventWriter(REQUEST)
    chunks = [
        {
            "id": "c2",
            "model": "m",
            "prompt_token_ids": [1, 2, 3],
            "choices": [{"index": 0, "delta": {"content": "Hel"}}],
        },
        {"choices": [{"index": 0, "delta": {"content": "lo"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "t1", "function": {"name": "f"}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a": '}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
    ]
    wire = b"".join(writer.add(chunk) for chunk in chunks) + writer.finish()
    events = _events(wire)
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0]["message"]["usage"]["input_tokens"] == 3  # known from the prompt's ids up front
    assert events[-2]["delta"]["stop_reason"] == "tool_use" and events[-2]["usage"]["output_tokens"] == 4
    folded = MessageAccumulator()
    for event in events:
        folded.add(event)
    message = folded.result()
    assert folded.stopped and message["stop_reason"] == "tool_use"
    assert message["content"] == [
        {"type": "text", "text": "Hello"},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
    ]
    recorded = anthropic.message_to_openai(message)
    assert recorded["choices"][0]["finish_reason"] == "tool_calls"
    assert recorded["choices"][0]["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert recorded["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({**REQUEST, "output_config": {}}, "output_config: not supported"),
        ({**REQUEST, "tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({**REQUEST, "stop_sequences": "##"}, "stop_sequences"),
        (
            {**REQUEST, "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]},
            "messages.0.content.0.tool_use_id",
        ),
        (
            {**REQUEST, "messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "x"}]}]},
            "'tool_result' is not supported in the assistant turn",
        ),
    ],
)
def test_requests_the_translation_cannot_take_are_refused_by_name(body: dict, needle: str) -> None:
    with pytest.raises(BadRequest, match=needle):
        anthropic.to_openai_request(anthropic.validate(body))
