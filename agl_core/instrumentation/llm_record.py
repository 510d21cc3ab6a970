"""What an LLM call span records, from the request and response bodies (OpenAI wire format).

Shared by everything that turns an OpenAI-compatible call into a span (the ``openai`` client
instrumentation here, the LLM proxy): :func:`request_attributes` and :func:`response_attributes`
give the span attributes (names in :mod:`agl_core.semconv`), :class:`StreamAccumulator` rebuilds
the response of a streamed call from its chunks, token ids included.

Token ids follow vLLM (``return_token_ids``): chat responses carry ``prompt_token_ids`` at the top
level and ``token_ids`` on each choice; text completions carry both on each choice. Streams carry
``prompt_token_ids`` in their first chunk and each chunk's new ``token_ids`` on its choices.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from agl_core import semconv


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (pydantic models and iterables included)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_unset=True)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Iterable):
        return [to_jsonable(v) for v in value]
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _int_list(value: Any) -> list[int] | None:
    if isinstance(value, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in value):
        return value
    return None


def request_attributes(
    request: Mapping[str, Any], *, operation: str, endpoint: str | None = None, system: str = "openai"
) -> dict[str, Any]:
    """Span attributes of an LLM request body (``messages`` or ``prompt``, sampling parameters)."""
    attributes: dict[str, Any] = {
        semconv.GEN_AI_OPERATION: operation,
        semconv.GEN_AI_SYSTEM: system,
        semconv.LLM_REQUEST: _dumps(request),
        semconv.LLM_STREAM: bool(request.get("stream")),
    }
    model = request.get("model")
    if isinstance(model, str):
        attributes[semconv.GEN_AI_REQUEST_MODEL] = model
    temperature = request.get("temperature")
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        attributes[semconv.GEN_AI_REQUEST_TEMPERATURE] = float(temperature)
    max_tokens = request.get("max_completion_tokens", request.get("max_tokens"))
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    if endpoint:
        attributes[semconv.LLM_ENDPOINT] = endpoint
    return attributes


def response_attributes(response: Mapping[str, Any]) -> dict[str, Any]:
    """Span attributes of an LLM response body (non-streamed, or rebuilt by :class:`StreamAccumulator`)."""
    attributes: dict[str, Any] = {semconv.LLM_RESPONSE: _dumps(response)}
    if isinstance(response.get("id"), str):
        attributes[semconv.GEN_AI_RESPONSE_ID] = response["id"]
    if isinstance(response.get("model"), str):
        attributes[semconv.GEN_AI_RESPONSE_MODEL] = response["model"]
    choices = [c for c in response.get("choices") or () if isinstance(c, Mapping)]
    reasons = [c.get("finish_reason") for c in choices if isinstance(c.get("finish_reason"), str)]
    if reasons:
        attributes[semconv.GEN_AI_FINISH_REASONS] = reasons
    usage = response.get("usage")
    if isinstance(usage, Mapping):
        if isinstance(usage.get("prompt_tokens"), int):
            attributes[semconv.GEN_AI_INPUT_TOKENS] = usage["prompt_tokens"]
        if isinstance(usage.get("completion_tokens"), int):
            attributes[semconv.GEN_AI_OUTPUT_TOKENS] = usage["completion_tokens"]
    first = choices[0] if choices else {}
    prompt_ids = _int_list(response.get("prompt_token_ids")) or _int_list(first.get("prompt_token_ids"))
    if prompt_ids is not None:
        attributes[semconv.LLM_PROMPT_TOKEN_IDS] = prompt_ids
    response_ids = _int_list(first.get("token_ids"))
    if response_ids is not None:
        attributes[semconv.LLM_RESPONSE_TOKEN_IDS] = response_ids
    logprobs = _logprobs(first.get("logprobs"))
    if logprobs:
        attributes[semconv.LLM_RESPONSE_LOGPROBS] = logprobs
    if len(choices) > 1:  # n > 1: each sample's ids, for training on all of them
        for position, choice in enumerate(choices):
            index = choice.get("index") if isinstance(choice.get("index"), int) else position
            ids = _int_list(choice.get("token_ids"))
            if ids is not None:
                attributes[f"{semconv.LLM_CHOICE_PREFIX}{index}.response_token_ids"] = ids
            values = _logprobs(choice.get("logprobs"))
            if values:
                attributes[f"{semconv.LLM_CHOICE_PREFIX}{index}.response_logprobs"] = values
    return attributes


def _logprobs(logprobs: Any) -> list[float] | None:
    if not isinstance(logprobs, Mapping):
        return None
    content = logprobs.get("content")  # chat: [{"token", "logprob", ...}]
    if isinstance(content, list):
        values = [item.get("logprob") for item in content if isinstance(item, Mapping)]
    else:  # text completions: {"token_logprobs": [...]}
        values = logprobs.get("token_logprobs") or []
    if values and all(isinstance(v, (int, float)) for v in values):
        return [float(v) for v in values]
    return None


class StreamAccumulator:
    """Rebuilds the full response of a streamed chat or text completion from its chunks."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.chunks = 0
        self._head: dict[str, Any] = {}
        self._prompt_token_ids: list[int] | None = None
        self._usage: Any = None
        self._choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: Any) -> None:
        """Fold in one chunk (a pydantic chunk object or its dict).

        A dict is read as it is, not copied: the proxy parses each chunk into a fresh dict, and a
        deep copy per chunk was most of the cost of rebuilding a long stream.
        """
        data = chunk if isinstance(chunk, dict) else to_jsonable(chunk)
        if not isinstance(data, Mapping):
            return
        self.chunks += 1
        for key in ("id", "model", "created", "system_fingerprint", "service_tier"):
            if data.get(key) is not None and key not in self._head:
                self._head[key] = data[key]
        prompt_ids = _int_list(data.get("prompt_token_ids"))
        if prompt_ids is not None and self._prompt_token_ids is None:
            self._prompt_token_ids = prompt_ids
        if data.get("usage"):
            self._usage = data["usage"]
        for choice in data.get("choices") or ():
            if isinstance(choice, Mapping):
                self._add_choice(choice)

    def _add_choice(self, delta_choice: Mapping[str, Any]) -> None:
        index = int(delta_choice.get("index") or 0)
        choice = self._choices.setdefault(
            index,
            {
                "index": index,
                "text": [],
                "reasoning": [],
                "tool_calls": {},
                "token_ids": None,
                "logprobs": [],
                "role": None,
                "finish_reason": None,
                "prompt_token_ids": None,
            },
        )
        if delta_choice.get("finish_reason") is not None:
            choice["finish_reason"] = delta_choice["finish_reason"]
        ids = _int_list(delta_choice.get("token_ids"))
        if ids is not None:
            # extend, not +: concatenating a growing list per chunk made the rebuild quadratic.
            if choice["token_ids"] is None:
                choice["token_ids"] = []
            choice["token_ids"].extend(ids)
        prompt_ids = _int_list(delta_choice.get("prompt_token_ids"))
        if prompt_ids is not None and choice["prompt_token_ids"] is None:
            choice["prompt_token_ids"] = prompt_ids
        logprobs = delta_choice.get("logprobs")
        if isinstance(logprobs, Mapping):
            if isinstance(logprobs.get("content"), list):
                choice["logprobs"].extend(logprobs["content"])
            elif isinstance(logprobs.get("token_logprobs"), list):
                choice["logprobs"].extend({"logprob": v} for v in logprobs["token_logprobs"])
        if isinstance(delta_choice.get("text"), str):  # text completion
            choice["text"].append(delta_choice["text"])
        delta = delta_choice.get("delta")
        if not isinstance(delta, Mapping):
            return
        if delta.get("role"):
            choice["role"] = delta["role"]
        if isinstance(delta.get("content"), str):
            choice["text"].append(delta["content"])
        reasoning = delta.get("reasoning_content", delta.get("reasoning"))
        if isinstance(reasoning, str):
            choice["reasoning"].append(reasoning)
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, Mapping):
                continue
            slot = choice["tool_calls"].setdefault(
                int(call.get("index") or 0), {"id": None, "type": "function", "name": [], "arguments": []}
            )
            if call.get("id"):
                slot["id"] = call["id"]
            if call.get("type"):
                slot["type"] = call["type"]
            function = call.get("function")
            if isinstance(function, Mapping):
                if function.get("name"):
                    slot["name"].append(function["name"])
                if function.get("arguments"):
                    slot["arguments"].append(function["arguments"])

    def response(self) -> dict[str, Any]:
        """The response as a non-streamed call would have returned it."""
        chat = self.operation == semconv.GEN_AI_OPERATION_CHAT
        response: dict[str, Any] = {**self._head, "object": "chat.completion" if chat else "text_completion"}
        choices = []
        for index in sorted(self._choices):
            acc = self._choices[index]
            choice: dict[str, Any] = {"index": index, "finish_reason": acc["finish_reason"]}
            text = "".join(acc["text"])
            if chat:
                message: dict[str, Any] = {"role": acc["role"] or "assistant", "content": text or None}
                if acc["reasoning"]:
                    message["reasoning_content"] = "".join(acc["reasoning"])
                if acc["tool_calls"]:
                    message["tool_calls"] = [
                        {
                            "id": slot["id"],
                            "type": slot["type"],
                            "function": {
                                "name": "".join(slot["name"]),
                                "arguments": "".join(slot["arguments"]),
                            },
                        }
                        for _, slot in sorted(acc["tool_calls"].items())
                    ]
                choice["message"] = message
                if acc["logprobs"]:
                    choice["logprobs"] = {"content": acc["logprobs"]}
            else:
                choice["text"] = text
                if acc["logprobs"]:
                    choice["logprobs"] = {"token_logprobs": [item.get("logprob") for item in acc["logprobs"]]}
                if acc["prompt_token_ids"] is not None:
                    choice["prompt_token_ids"] = acc["prompt_token_ids"]
            if acc["token_ids"] is not None:
                choice["token_ids"] = acc["token_ids"]
            choices.append(choice)
        response["choices"] = choices
        if self._usage is not None:
            response["usage"] = self._usage
        if self._prompt_token_ids is not None:
            response["prompt_token_ids"] = self._prompt_token_ids
        return response


__all__ = ["StreamAccumulator", "request_attributes", "response_attributes", "to_jsonable"]
