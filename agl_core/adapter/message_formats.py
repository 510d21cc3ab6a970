"""The message formats of LLM calls, one reader per convention (see
:mod:`agl_core.adapter.conventions`, which tries them in order): OpenTelemetry GenAI in its current
form (messages of typed parts), as events, and flattened (OpenLLMetry); OpenInference; and the
small readers they share (JSON values, flattened attributes, tool calls and definitions). Each
reader returns the request messages and the response choices in OpenAI's shape, or None when the
span does not carry its convention."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agl_core.proto.trace_pb2 import Span
from agl_core.types.values import from_any_value

# --- small readers -----------------------------------------------------------------------------


def json_value(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return value


def int_list(value: Any) -> list[int] | None:
    """A list of ints from a list attribute or its JSON string; None if it is not one."""
    value = json_value(value)
    if isinstance(value, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in value):
        return list(value)
    return None


def unflatten(attributes: Mapping[str, Any], prefix: str) -> Any:
    """``prefix.0.a.b = v`` attributes as nested lists and dicts (numeric segments become lists)."""
    tree: dict[Any, Any] = {}
    head = prefix + "."
    for key, value in attributes.items():
        if not key.startswith(head):
            continue
        parts = [int(p) if p.isdigit() else p for p in key[len(head) :].split(".")]
        node = tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # a value and a sub-key share a name; keep the value
                break
            node = child
        else:
            node[parts[-1]] = value
    return _lists(tree)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(isinstance(k, int) for k in node):
        return [_lists(node[k]) for k in sorted(node)]
    return {k: _lists(v) for k, v in node.items()}


def _text(content: Any) -> Any:
    """OpenAI content: a string, or a list of parts; anything else as JSON text."""
    if content is None or isinstance(content, str | list):
        return content
    return json.dumps(content)


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments) if arguments is not None else ""
    return {"id": call_id, "type": "function", "function": {"name": name or "", "arguments": arguments}}


def _openai_tool(raw: Any) -> dict[str, Any] | None:
    raw = json_value(raw)
    if not isinstance(raw, dict):
        return None
    if raw.get("type", "function") == "function" and isinstance(raw.get("function"), dict):
        return {"type": "function", "function": raw["function"]}
    if raw.get("name"):
        function = {k: raw[k] for k in ("name", "description", "parameters") if k in raw}
        return {"type": "function", "function": function}
    return None


def tool_definitions(raw: Any) -> list[dict[str, Any]]:
    raw = json_value(raw)
    return [t for t in (_openai_tool(item) for item in raw or ()) if t] if isinstance(raw, list) else []


# --- GenAI, current: messages of parts ---------------------------------------------------------


def _from_parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One GenAI message (role + parts) as OpenAI messages (a tool response is its own message)."""
    role = message.get("role") or "user"
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for part in message.get("parts") or ():
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("content", "")))
        elif kind == "tool_call":
            calls.append(_tool_call(part.get("id"), part.get("name"), part.get("arguments")))
        elif kind == "tool_call_response":
            response = part.get("response", part.get("result"))
            out.append({"role": "tool", "tool_call_id": part.get("id"), "content": _text(response) or ""})
    if texts or calls or not out:
        converted: dict[str, Any] = {"role": role, "content": "".join(texts) if texts else None}
        if calls:
            converted["tool_calls"] = calls
        if converted["content"] is None and not calls:
            converted["content"] = ""
        out.insert(0, converted)
    return out


def genai_current(attributes: Mapping[str, Any]) -> tuple[list, list] | None:
    inputs = json_value(attributes.get("gen_ai.input.messages"))
    outputs = json_value(attributes.get("gen_ai.output.messages"))
    if not isinstance(inputs, list) and not isinstance(outputs, list):
        return None
    messages: list[dict[str, Any]] = []
    system = json_value(attributes.get("gen_ai.system_instructions"))
    if isinstance(system, list) and system:
        messages.extend(_from_parts({"role": "system", "parts": system}))
    for message in inputs or ():
        if isinstance(message, dict):
            messages.extend(_from_parts(message))
    choices = []
    for index, message in enumerate(outputs or ()):
        if isinstance(message, dict):
            reply = _from_parts({**message, "role": message.get("role") or "assistant"})[0]
            choices.append({"index": index, "message": reply, "finish_reason": message.get("finish_reason")})
    return messages, choices


# --- GenAI, events -----------------------------------------------------------------------------

_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _event_body(event_attributes: dict[str, Any]) -> dict[str, Any]:
    body = json_value(event_attributes.get("gen_ai.event.content"))
    return {**event_attributes, **body} if isinstance(body, dict) else event_attributes


def _event_message(role: str, body: Mapping[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": body.get("role") or role, "content": _text(body.get("content"))}
    calls = json_value(body.get("tool_calls"))
    if isinstance(calls, list) and calls:
        message["tool_calls"] = [
            _tool_call(c.get("id"), (c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments"))
            for c in calls
            if isinstance(c, dict)
        ]
    if role == "tool" and body.get("id") is not None:
        message["tool_call_id"] = body.get("id")
    if message["content"] is None and "tool_calls" not in message:
        message["content"] = ""
    return message


def genai_events(span: Span) -> tuple[list, list] | None:
    messages: list[dict[str, Any]] = []
    choices: list[dict[str, Any]] = []
    found = False
    for event in span.events:
        attributes = {kv.key: from_any_value(kv.value) for kv in event.attributes}
        if event.name == "gen_ai.client.inference.operation.details":
            current = genai_current(attributes)
            if current is not None:
                return current
            continue
        if event.name in ("gen_ai.content.prompt", "gen_ai.content.completion"):
            found = True
            raw = json_value(attributes.get("gen_ai.prompt" if event.name.endswith("prompt") else "gen_ai.completion"))
            for item in raw if isinstance(raw, list) else ():
                if not isinstance(item, dict):
                    continue
                if event.name.endswith("prompt"):
                    messages.append(_event_message(item.get("role") or "user", item))
                else:
                    inner = item.get("message") if isinstance(item.get("message"), dict) else item
                    choices.append(
                        {
                            "index": len(choices),
                            "message": _event_message("assistant", inner),
                            "finish_reason": item.get("finish_reason"),
                        }
                    )
            continue
        body = _event_body(attributes)
        if event.name in _EVENT_ROLES:
            found = True
            messages.append(_event_message(_EVENT_ROLES[event.name], body))
        elif event.name == "gen_ai.choice":
            found = True
            inner = json_value(body.get("message"))
            inner = inner if isinstance(inner, dict) else {}
            index = body.get("index", len(choices))
            message = _event_message("assistant", inner)
            choices.append({"index": index, "message": message, "finish_reason": body.get("finish_reason")})
    if not found:
        return None
    choices.sort(key=lambda c: c["index"] if isinstance(c["index"], int) else 0)
    return messages, choices


# --- GenAI, flattened (OpenLLMetry) ------------------------------------------------------------


def _flat_message(raw: Any, default_role: str) -> dict[str, Any]:
    raw = raw if isinstance(raw, dict) else {}
    message: dict[str, Any] = {"role": raw.get("role") or default_role, "content": _text(raw.get("content"))}
    calls = raw.get("tool_calls")
    if isinstance(calls, list) and calls:
        message["tool_calls"] = [
            _tool_call(c.get("id"), c.get("name"), c.get("arguments")) for c in calls if isinstance(c, dict)
        ]
    if raw.get("tool_call_id") is not None:
        message["tool_call_id"] = raw["tool_call_id"]
    if message["content"] is None and "tool_calls" not in message:
        message["content"] = ""
    return message


def genai_flattened(attributes: Mapping[str, Any]) -> tuple[list, list] | None:
    prompt = unflatten(attributes, "gen_ai.prompt")
    completion = unflatten(attributes, "gen_ai.completion")
    if not isinstance(prompt, list) and not isinstance(completion, list):
        return None
    messages = [_flat_message(m, "user") for m in prompt or ()] if isinstance(prompt, list) else []
    choices = []
    for index, raw in enumerate(completion if isinstance(completion, list) else ()):
        finish = raw.get("finish_reason") if isinstance(raw, dict) else None
        choices.append({"index": index, "message": _flat_message(raw, "assistant"), "finish_reason": finish})
    return messages, choices


# --- OpenInference -----------------------------------------------------------------------------


def _oi_message(raw: Any, default_role: str) -> dict[str, Any]:
    raw = raw.get("message", {}) if isinstance(raw, dict) else {}
    content = raw.get("content")
    if content is None and isinstance(raw.get("contents"), list):
        texts = [
            (c.get("message_content") or {}).get("text")
            for c in raw["contents"]
            if isinstance(c, dict) and (c.get("message_content") or {}).get("type", "text") == "text"
        ]
        content = "".join(t for t in texts if isinstance(t, str))
    message: dict[str, Any] = {"role": raw.get("role") or default_role, "content": _text(content)}
    calls = raw.get("tool_calls")
    if isinstance(calls, list) and calls:
        message["tool_calls"] = []
        for call in calls:
            call = (call or {}).get("tool_call") or {}
            function = call.get("function") or {}
            message["tool_calls"].append(_tool_call(call.get("id"), function.get("name"), function.get("arguments")))
    for key in ("tool_call_id", "name"):
        if raw.get(key) is not None:
            message[key] = raw[key]
    if message["content"] is None and "tool_calls" not in message:
        message["content"] = ""
    return message


def openinference(attributes: Mapping[str, Any]) -> tuple[list, list] | None:
    inputs = unflatten(attributes, "llm.input_messages")
    outputs = unflatten(attributes, "llm.output_messages")
    if not isinstance(inputs, list) and not isinstance(outputs, list):
        return None
    messages = [_oi_message(m, "user") for m in inputs] if isinstance(inputs, list) else []
    choices = [
        {"index": i, "message": _oi_message(m, "assistant"), "finish_reason": None}
        for i, m in enumerate(outputs if isinstance(outputs, list) else ())
    ]
    return messages, choices


def raw_json_value(attributes: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """OpenInference's ``input.value``/``output.value`` when it holds a JSON object."""
    mime = attributes.get(f"{name}.mime_type")
    value = json_value(attributes.get(f"{name}.value")) if mime in (None, "application/json") else None
    return value if isinstance(value, dict) else None
