"""LLM calls as recorded by any instrumentation, read into one shape (an OpenAI chat request/response).

Agents are instrumented by many packages, and each writes an LLM call its own way. The adapters
read them all through :func:`read_llm_call`, which tries, in order:

1. **agl** (``agl.llm.request`` / ``agl.llm.response`` JSON, ``agl.llm.*_token_ids``): agl's own
   OpenAI instrumentation, the LLM proxy, the Go and TypeScript clients.
2. **OpenTelemetry GenAI, current** (semantic conventions v1.37): ``gen_ai.input.messages``,
   ``gen_ai.output.messages``, ``gen_ai.system_instructions``, ``gen_ai.tool.definitions``, each a
   JSON list of messages made of typed *parts* (``text``, ``tool_call``, ``tool_call_response``,
   ``reasoning``, ...); as span attributes, or as the attributes of a
   ``gen_ai.client.inference.operation.details`` event.
3. **OpenTelemetry GenAI, events** (v1.28 to v1.36): span events ``gen_ai.system.message``,
   ``gen_ai.user.message``, ``gen_ai.assistant.message``, ``gen_ai.tool.message`` and
   ``gen_ai.choice``, with their body fields (``content``, ``tool_calls``, ``id``, ``message``,
   ``index``, ``finish_reason``) as event attributes (or one JSON ``gen_ai.event.content``); and
   the v1.26 events ``gen_ai.content.prompt`` / ``gen_ai.content.completion`` (attributes
   ``gen_ai.prompt`` / ``gen_ai.completion`` holding JSON).
4. **OpenTelemetry GenAI, flattened** (the older ``gen_ai.prompt.N.role`` / ``.content`` /
   ``gen_ai.completion.N.tool_calls.M.name`` form of OpenLLMetry, ``llm.request.functions.N.*``).
5. **OpenInference** (Arize's spec, as written by the ``openinference-instrumentation-*``
   packages): ``llm.input_messages.N.message.role`` / ``.content`` / ``.contents.M.message_content.text``
   / ``.tool_calls.M.tool_call.{id,function.name,function.arguments}`` / ``.tool_call_id``,
   ``llm.output_messages.N.message.*``, ``llm.tools.N.tool.json_schema``, ``llm.invocation_parameters``,
   ``llm.model_name``, ``llm.token_count.{prompt,completion}``, and the raw ``input.value`` /
   ``output.value`` when their mime type is JSON.

Which spans are LLM calls: ``gen_ai.operation.name`` is an LLM operation (GenAI, agl), or
``openinference.span.kind`` is ``LLM``. Token ids come from agl's attributes, else from the raw
response body where the backend returned them (vLLM's ``prompt_token_ids`` and each choice's
``token_ids``), which OpenInference keeps in ``output.value``. Usage reads ``gen_ai.usage.*``
(``input_tokens``/``output_tokens`` and the older ``prompt_tokens``/``completion_tokens``) and
``llm.token_count.*``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agl_core import semconv
from agl_core.proto.trace_pb2 import Span
from agl_core.types.values import from_any_value

GENAI_SEMCONV_VERSION = "1.37.0"  # the OpenTelemetry GenAI conventions the current form follows
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"


@dataclass
class LlmCall:
    """One LLM call, whatever wrote it.

    :ivar request: an OpenAI chat (``messages``) or completion (``prompt``) request body.
    :ivar response: an OpenAI response body (``choices``, ``usage``, ``id`` where known).
    :ivar convention: which convention it was read from (``agl``, ``gen_ai``, ``gen_ai.events``,
        ``gen_ai.flattened``, ``openinference``).
    """

    request: dict[str, Any]
    response: dict[str, Any]
    convention: str
    prompt_token_ids: list[int] = field(default_factory=list)
    response_token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] | None = None
    response_id: str | None = None
    model: str | None = None


def is_llm_span(attributes: Mapping[str, Any]) -> bool:
    """Whether a span's attributes mark it as an LLM call under any supported convention."""
    if attributes.get(semconv.GEN_AI_OPERATION) in semconv.LLM_OPERATIONS:
        return True
    return attributes.get(OPENINFERENCE_SPAN_KIND) == "LLM"


# --- small readers -----------------------------------------------------------------------------


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return value


def int_list(value: Any) -> list[int] | None:
    """A list of ints from a list attribute or its JSON string; None if it is not one."""
    value = _json(value)
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
    raw = _json(raw)
    if not isinstance(raw, dict):
        return None
    if raw.get("type", "function") == "function" and isinstance(raw.get("function"), dict):
        return {"type": "function", "function": raw["function"]}
    if raw.get("name"):
        function = {k: raw[k] for k in ("name", "description", "parameters") if k in raw}
        return {"type": "function", "function": function}
    return None


def _tools(raw: Any) -> list[dict[str, Any]]:
    raw = _json(raw)
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


def _genai_current(attributes: Mapping[str, Any]) -> tuple[list, list] | None:
    inputs = _json(attributes.get("gen_ai.input.messages"))
    outputs = _json(attributes.get("gen_ai.output.messages"))
    if not isinstance(inputs, list) and not isinstance(outputs, list):
        return None
    messages: list[dict[str, Any]] = []
    system = _json(attributes.get("gen_ai.system_instructions"))
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
    body = _json(event_attributes.get("gen_ai.event.content"))
    return {**event_attributes, **body} if isinstance(body, dict) else event_attributes


def _event_message(role: str, body: Mapping[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": body.get("role") or role, "content": _text(body.get("content"))}
    calls = _json(body.get("tool_calls"))
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


def _genai_events(span: Span) -> tuple[list, list] | None:
    messages: list[dict[str, Any]] = []
    choices: list[dict[str, Any]] = []
    found = False
    for event in span.events:
        attributes = {kv.key: from_any_value(kv.value) for kv in event.attributes}
        if event.name == "gen_ai.client.inference.operation.details":
            current = _genai_current(attributes)
            if current is not None:
                return current
            continue
        if event.name in ("gen_ai.content.prompt", "gen_ai.content.completion"):
            found = True
            raw = _json(attributes.get("gen_ai.prompt" if event.name.endswith("prompt") else "gen_ai.completion"))
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
            inner = _json(body.get("message"))
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


def _genai_flattened(attributes: Mapping[str, Any]) -> tuple[list, list] | None:
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


def _openinference(attributes: Mapping[str, Any]) -> tuple[list, list] | None:
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


def _raw_json_value(attributes: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """OpenInference's ``input.value``/``output.value`` when it holds a JSON object."""
    mime = attributes.get(f"{name}.mime_type")
    value = _json(attributes.get(f"{name}.value")) if mime in (None, "application/json") else None
    return value if isinstance(value, dict) else None


# --- the one entry point -----------------------------------------------------------------------


def _usage(attributes: Mapping[str, Any], response: Mapping[str, Any]) -> dict[str, int] | None:
    usage = response.get("usage")
    if isinstance(usage, dict):
        return usage
    prompt = attributes.get(
        semconv.GEN_AI_INPUT_TOKENS,
        attributes.get("gen_ai.usage.prompt_tokens", attributes.get("llm.token_count.prompt")),
    )
    completion = attributes.get(
        semconv.GEN_AI_OUTPUT_TOKENS,
        attributes.get("gen_ai.usage.completion_tokens", attributes.get("llm.token_count.completion")),
    )
    if not isinstance(prompt, int) and not isinstance(completion, int):
        return None
    usage = {"prompt_tokens": prompt or 0, "completion_tokens": completion or 0}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return usage


def _token_ids(attributes: Mapping[str, Any], keys: Sequence[str]) -> list[int] | None:
    for key in keys:
        ids = int_list(attributes.get(key))
        if ids is not None:
            return ids
    return None


def read_llm_call(span: Span, attributes: Mapping[str, Any]) -> LlmCall:
    """The LLM call a span records, read by the first convention that finds one (see the module doc)."""
    request = _json(attributes.get(semconv.LLM_REQUEST))
    response = _json(attributes.get(semconv.LLM_RESPONSE))
    convention = "agl"
    if not isinstance(request, dict) or not isinstance(response, dict):
        raw_request = _raw_json_value(attributes, "input")
        raw_response = _raw_json_value(attributes, "output")
        for name, reader in (
            ("gen_ai", lambda: _genai_current(attributes)),
            ("gen_ai.events", lambda: _genai_events(span)),
            ("gen_ai.flattened", lambda: _genai_flattened(attributes)),
            ("openinference", lambda: _openinference(attributes)),
        ):
            found = reader()
            if found is not None:
                convention = name
                messages, choices = found
                break
        else:
            convention, messages, choices = "unknown", [], []
        if not isinstance(request, dict):
            request = _request(attributes, messages, raw_request)
        if not isinstance(response, dict):
            response = _response(choices, raw_response)
    model = (
        attributes.get(semconv.GEN_AI_RESPONSE_MODEL)
        or attributes.get(semconv.GEN_AI_REQUEST_MODEL)
        or attributes.get("llm.model_name")
        or response.get("model")
        or request.get("model")
    )
    usage = _usage(attributes, response)
    if usage is not None:
        response["usage"] = usage
    response_id = attributes.get(semconv.GEN_AI_RESPONSE_ID) or response.get("id")
    choices = response.get("choices") or [{}]
    first = choices[0] if isinstance(choices[0], dict) else {}
    prompt_ids = _token_ids(attributes, (semconv.LLM_PROMPT_TOKEN_IDS, "prompt_token_ids"))
    response_ids = _token_ids(attributes, (semconv.LLM_RESPONSE_TOKEN_IDS, "response_token_ids"))
    logprobs = attributes.get(semconv.LLM_RESPONSE_LOGPROBS)
    return LlmCall(
        request=request,
        response=response,
        convention=convention,
        prompt_token_ids=prompt_ids if prompt_ids is not None else int_list(response.get("prompt_token_ids")) or [],
        response_token_ids=response_ids if response_ids is not None else int_list(first.get("token_ids")) or [],
        logprobs=[float(x) for x in logprobs] if isinstance(logprobs, list) else None,
        response_id=response_id if isinstance(response_id, str) and response_id else None,
        model=model if isinstance(model, str) else None,
    )


def _request(attributes: Mapping[str, Any], messages: list, raw: dict[str, Any] | None) -> dict[str, Any]:
    request: dict[str, Any] = {}
    parameters = _json(attributes.get("llm.invocation_parameters"))
    if isinstance(parameters, dict):
        request.update(parameters)
    if raw is not None:  # the body the framework sent, when an instrumentation kept it
        request.update({k: v for k, v in raw.items() if k not in ("messages", "prompt")})
    request["messages"] = messages or (raw or {}).get("messages") or []
    model = attributes.get(semconv.GEN_AI_REQUEST_MODEL) or attributes.get("llm.model_name")
    if model and "model" not in request:
        request["model"] = model
    tools = (
        _tools(attributes.get("gen_ai.tool.definitions"))
        or _tools([t.get("tool", {}).get("json_schema") for t in unflatten(attributes, "llm.tools") or ()])
        or _tools(unflatten(attributes, "llm.request.functions"))
    )
    if tools:
        request["tools"] = tools
    return request


def _response(choices: list, raw: dict[str, Any] | None) -> dict[str, Any]:
    response = dict(raw) if raw is not None and isinstance(raw.get("choices"), list) else {}
    if choices and not response.get("choices"):
        response["choices"] = choices
    elif choices:  # keep the raw body (token ids, logprobs) but the convention's finish reasons where missing
        for raw_choice, choice in zip(response["choices"], choices, strict=False):
            if isinstance(raw_choice, dict) and raw_choice.get("finish_reason") is None:
                raw_choice["finish_reason"] = choice.get("finish_reason")
    response.setdefault("choices", [])
    return response


__all__ = ["GENAI_SEMCONV_VERSION", "LlmCall", "int_list", "is_llm_span", "read_llm_call", "unflatten"]
