"""The Anthropic Messages API in terms of OpenAI chat completions, and back.

The proxy serves ``POST /v1/messages`` in front of OpenAI-compatible backends by translating the
request into a chat completion (:func:`to_openai_request`) and the answer back into a message
(:func:`to_anthropic_message`; streams in :mod:`agl_llm_proxy.anthropic_stream`). Calls to
backends that serve the Messages API natively are passed through, and recorded through
:func:`message_to_openai`, so that every LLM call span holds OpenAI chat bodies whatever API the
caller spoke (the adapters read one shape).

What translates: ``system`` (a string or text blocks), ``messages`` with ``text``, ``image``
(base64 or URL), ``tool_use`` and ``tool_result`` blocks, ``tools`` (custom tools), ``tool_choice``
(auto, any, tool, none; ``disable_parallel_tool_use``), ``max_tokens``, ``stop_sequences``,
``temperature``, ``top_p``, ``top_k``, ``stream``. ``thinking`` blocks of earlier turns are
dropped (an OpenAI backend cannot take them back), and so is a ``thinking`` setting (a reasoning
model served by vLLM thinks, or not, by its chat template). Anything else a request asks for that has no
OpenAI counterpart (server tools, documents, ...) is refused with a 400 that names it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agl_llm_proxy.errors import BadRequest

# OpenAI finish_reason -> Anthropic stop_reason.
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use"}
_FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}
# Keys of a Messages request this translation reads or may ignore (metadata, service_tier,
# cache_control, inference_geo, speed: hints with no effect on the answer's content); any other
# key is refused rather than silently dropped.
_KNOWN_KEYS = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "stream",
        "tools",
        "tool_choice",
        "metadata",
        "service_tier",
        "cache_control",
        "inference_geo",
        "speed",
        "thinking",
    }
)


def validate(body: Any) -> dict[str, Any]:
    """The request as a dict, or :class:`BadRequest` saying what is wrong (checks of the API itself)."""
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, not {type(body).__name__}")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("model: Field required (a model name string)")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise BadRequest("max_tokens: Field required (a positive integer)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: Field required (a non-empty list of messages)")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages.{i}.role: must be 'user' or 'assistant'")
        if not isinstance(message.get("content"), (str, list)):
            raise BadRequest(f"messages.{i}.content: must be a string or a list of content blocks")
    return body


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, block in enumerate(content):
            if not isinstance(block, Mapping) or block.get("type") != "text" or not isinstance(block.get("text"), str):
                raise BadRequest(f"{where}.{j}: only text blocks are supported here")
            texts.append(block["text"])
        return "\n".join(texts)
    if content is None:
        return ""
    raise BadRequest(f"{where}: must be a string or a list of text blocks")


def _image_part(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if isinstance(source, Mapping) and source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif isinstance(source, Mapping) and source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise BadRequest(f"{where}.source: an image needs a base64 or url source")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result_message(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(block.get("tool_use_id"), str):
        raise BadRequest(f"{where}.tool_use_id: Field required")
    content = block.get("content")
    if isinstance(content, list):  # images in a tool result have no place in an OpenAI tool message
        content = [b for b in content if not (isinstance(b, Mapping) and b.get("type") == "image")]
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": _text_of(content, f"{where}.content")}


def _translate_message(message: Mapping[str, Any], i: int) -> list[dict[str, Any]]:
    role = message["role"]
    content = message["content"]
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    where = f"messages.{i}.content"
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image" and role == "user":
            parts.append(_image_part(block, f"{where}.{j}"))
        elif kind == "tool_use" and role == "assistant":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise BadRequest(f"{where}.{j}: a tool_use block needs an id and a name")
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            calls.append(
                {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}
            )
        elif kind == "tool_result" and role == "user":
            tool_messages.append(_tool_result_message(block, f"{where}.{j}"))
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            continue
        else:
            raise BadRequest(
                f"{where}.{j}: content block type {kind!r} is not supported in the {role} turn by this proxy"
            )
    out: list[dict[str, Any]] = list(tool_messages)  # tool results answer the previous turn's calls: first
    if parts or calls or not tool_messages:
        # One text block is a plain string (what most chat templates expect); several stay parts.
        body: Any = parts[0]["text"] if len(parts) == 1 and parts[0]["type"] == "text" else parts
        if not parts:
            body = ""
        translated: dict[str, Any] = {"role": role, "content": body if (body or not calls) else None}
        if calls:
            translated["tool_calls"] = calls
        out.append(translated)
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise BadRequest("tools: must be a list of tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
            raise BadRequest(f"tools.{i}.name: Field required")
        if tool.get("type") not in (None, "custom"):
            raise BadRequest(f"tools.{i}: server tool {tool.get('type')!r} is not supported by this proxy")
        function: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object"}}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> tuple[Any, bool | None]:
    """(OpenAI tool_choice, parallel_tool_calls or None)."""
    if not isinstance(choice, Mapping):
        raise BadRequest("tool_choice: must be an object with a type")
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise BadRequest("tool_choice.type: must be 'auto', 'any', 'tool' (with a name) or 'none'")


def to_openai_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The chat completion request of a (validated) Messages request."""
    unknown = sorted(set(body) - _KNOWN_KEYS)
    if unknown:
        raise BadRequest(f"{unknown[0]}: not supported by this proxy's translation to chat completions")
    messages: list[dict[str, Any]] = []
    if body.get("system") is not None:
        messages.append({"role": "system", "content": _text_of(body["system"], "system")})
    for i, message in enumerate(body["messages"]):
        messages.extend(_translate_message(message, i))
    out: dict[str, Any] = {"model": body["model"], "messages": messages, "max_tokens": body["max_tokens"]}
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            out[key] = body[key]
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise BadRequest("stop_sequences: must be a list of strings")
        out["stop"] = stops
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        out["tool_choice"], parallel = _tool_choice(body["tool_choice"])
        if parallel is not None:
            out["parallel_tool_calls"] = parallel
    if body.get("stream"):
        out["stream"] = True
    return out


def stop_reason(finish_reason: Any, matched: Any, stop_sequences: Any) -> tuple[str | None, str | None]:
    """(stop_reason, stop_sequence) of an OpenAI finish reason (vLLM's ``stop_reason`` names the
    stop string that ended the answer)."""
    if finish_reason is None:
        return None, None
    if finish_reason == "stop" and isinstance(matched, str) and isinstance(stop_sequences, list):
        if matched in stop_sequences:
            return "stop_sequence", matched
    return STOP_REASONS.get(str(finish_reason), "end_turn"), None


def tool_input(arguments: str) -> Any:
    """A tool call's arguments as the ``input`` object (``{}`` if the model wrote no valid JSON)."""
    try:
        value = json.loads(arguments) if arguments else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def message_id(openai_id: Any) -> str:
    return f"msg_{openai_id}" if isinstance(openai_id, str) and openai_id else "msg_agl"


def usage(openai_usage: Any) -> dict[str, int]:
    usage = openai_usage if isinstance(openai_usage, Mapping) else {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return {
        "input_tokens": prompt if isinstance(prompt, int) else 0,
        "output_tokens": completion if isinstance(completion, int) else 0,
    }


def to_anthropic_message(response: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
    """The Messages answer of a chat completion (its first choice: the Messages API has no ``n``)."""
    choices = response.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], Mapping) else {}
    message = choice.get("message") if isinstance(choice.get("message"), Mapping) else {}
    content: list[dict[str, Any]] = []
    if isinstance(message.get("content"), str) and message["content"]:
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or "toolu_agl",
                "name": function.get("name", ""),
                "input": tool_input(function.get("arguments") or ""),
            }
        )
    reason, sequence = stop_reason(
        choice.get("finish_reason"), choice.get("stop_reason"), request.get("stop_sequences")
    )
    return {
        "id": message_id(response.get("id")),
        "type": "message",
        "role": "assistant",
        "model": response.get("model") or request.get("model"),
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage(response.get("usage")),
    }


def message_to_openai(message: Mapping[str, Any]) -> dict[str, Any]:
    """The chat completion of a Messages answer (how a natively served call is recorded)."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or ():
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
    answer: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        answer["tool_calls"] = calls
    reason = message.get("stop_reason")
    choice: dict[str, Any] = {"index": 0, "message": answer, "finish_reason": _FINISH_REASONS.get(str(reason), reason)}
    response: dict[str, Any] = {
        "id": message.get("id"),
        "object": "chat.completion",
        "model": message.get("model"),
        "choices": [choice],
    }
    used = message.get("usage")
    if isinstance(used, Mapping):
        prompt, completion = used.get("input_tokens"), used.get("output_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            response["usage"] = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
    return response


__all__ = [
    "STOP_REASONS",
    "message_id",
    "message_to_openai",
    "stop_reason",
    "to_anthropic_message",
    "to_openai_request",
    "tool_input",
    "usage",
    "validate",
]
