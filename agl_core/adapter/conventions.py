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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agl_core import semconv
from agl_core.adapter.message_formats import (
    genai_current,
    genai_events,
    genai_flattened,
    int_list,
    json_value,
    openinference,
    raw_json_value,
    tool_definitions,
    unflatten,
)
from agl_core.proto.trace_pb2 import Span

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
    request = json_value(attributes.get(semconv.LLM_REQUEST))
    response = json_value(attributes.get(semconv.LLM_RESPONSE))
    convention = "agl"
    if not isinstance(request, dict) or not isinstance(response, dict):
        raw_request = raw_json_value(attributes, "input")
        raw_response = raw_json_value(attributes, "output")
        for name, reader in (
            ("gen_ai", lambda: genai_current(attributes)),
            ("gen_ai.events", lambda: genai_events(span)),
            ("gen_ai.flattened", lambda: genai_flattened(attributes)),
            ("openinference", lambda: openinference(attributes)),
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
    parameters = json_value(attributes.get("llm.invocation_parameters"))
    if isinstance(parameters, dict):
        request.update(parameters)
    if raw is not None:  # the body the framework sent, when an instrumentation kept it
        request.update({k: v for k, v in raw.items() if k not in ("messages", "prompt")})
    request["messages"] = messages or (raw or {}).get("messages") or []
    model = attributes.get(semconv.GEN_AI_REQUEST_MODEL) or attributes.get("llm.model_name")
    if model and "model" not in request:
        request["model"] = model
    tools = (
        tool_definitions(attributes.get("gen_ai.tool.definitions"))
        or tool_definitions([t.get("tool", {}).get("json_schema") for t in unflatten(attributes, "llm.tools") or ()])
        or tool_definitions(unflatten(attributes, "llm.request.functions"))
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
