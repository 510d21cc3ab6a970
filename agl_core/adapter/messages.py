"""Spans to OpenAI fine-tuning records: one ``{"messages": [...], "tools": [...]}`` per LLM call.

:class:`TraceToMessages` (plugin name ``messages``) takes the LLM calls the triplet adapter would
(same matching options) and writes each as the conversation the model saw followed by the
assistant message it produced (tool calls included), with the tool definitions of the request,
in the JSONL shape OpenAI's chat fine-tuning takes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypedDict

from agl_core.adapter.base import TraceAdapter
from agl_core.adapter.tree import TraceTree
from agl_core.adapter.triplet import TracerTraceToTriplet, llm_call_contents
from agl_core.proto.trace_pb2 import Span

_MESSAGE_FIELDS = ("role", "content", "name", "tool_calls", "tool_call_id", "refusal")


class OpenAIMessages(TypedDict, total=False):
    """One fine-tuning record: ``messages`` always; ``tools`` and ``parallel_tool_calls`` when used."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    parallel_tool_calls: bool


def _message(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict) or not raw.get("role"):
        return None
    message = {k: raw[k] for k in _MESSAGE_FIELDS if raw.get(k) is not None}
    if message.get("tool_calls"):
        message["tool_calls"] = [_tool_call(call) for call in message["tool_calls"] if isinstance(call, dict)]
    if "content" not in message and not message.get("tool_calls"):
        message["content"] = ""
    return message


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {
        "id": call.get("id"),
        "type": call.get("type") or "function",
        "function": {"name": function.get("name", ""), "arguments": arguments},
    }


def _tool(tool: Any) -> dict[str, Any] | None:
    if not isinstance(tool, dict):
        return None
    if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        return tool
    if "name" in tool:  # the legacy `functions=[...]` shape
        return {"type": "function", "function": tool}
    return None


class TraceToMessages(TraceAdapter[list[OpenAIMessages]]):
    """Spans to OpenAI chat fine-tuning records, one per LLM call, in call order.

    Takes the same options as :class:`~agl_core.adapter.triplet.TracerTraceToTriplet` for finding
    calls (``llm_call_match``, ``agent_match``, ``exclude_llm_call_in_reward``, ``dedupe``,
    ``repair_hierarchy``). Text completions and calls without a response are left out.
    """

    def __init__(self, **options: Any) -> None:
        options.pop("reward_match", None)
        self._calls = TracerTraceToTriplet(**options)

    def adapt(self, source: Sequence[Span]) -> list[OpenAIMessages]:
        tree = TraceTree(source, repair=self._calls.repair_hierarchy, clock_skew_ns=self._calls.clock_skew_ns)
        records: list[OpenAIMessages] = []
        for node, _agent in self._calls.find_llm_calls(tree):
            request, response = llm_call_contents(node)
            prompt = request.get("messages")
            choices = response.get("choices") or []
            if not isinstance(prompt, list) or not choices or not isinstance(choices[0], dict):
                continue
            reply = _message(choices[0].get("message"))
            if reply is None:
                continue
            messages = [m for m in (_message(raw) for raw in prompt) if m is not None]
            record: OpenAIMessages = {"messages": [*messages, reply]}
            tools = [t for t in (_tool(raw) for raw in request.get("tools") or request.get("functions") or ()) if t]
            if tools:
                record["tools"] = tools
            if isinstance(request.get("parallel_tool_calls"), bool):
                record["parallel_tool_calls"] = request["parallel_tool_calls"]
            records.append(record)
        return records


__all__ = ["OpenAIMessages", "TraceToMessages"]
