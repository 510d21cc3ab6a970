"""A rollout's spans as the rollout page shows them: a timeline of the span tree, the LLM calls
(messages, token counts, reward) and the rewards.

The tree and the LLM calls come from the same code the algorithms train on
(:class:`~agl_core.adapter.tree.TraceTree`, :class:`~agl_core.adapter.TracerTraceToTriplet`), so
what the page shows is what training sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agl_core import semconv
from agl_core.adapter import TracerTraceToTriplet
from agl_core.adapter.tree import SpanNode, TraceTree
from agl_core.emitter.reward import find_final_reward, find_reward_spans, get_rewards
from agl_core.proto.trace_pb2 import SPAN_STATUS_CODE_ERROR, SPAN_STATUS_CODE_OK, Span

# Attribute strings longer than this are cut in the timeline (the LLM calls carry messages whole).
ATTRIBUTE_CHARS = 2000
# Attributes that repeat what the LLM-call view already shows in a readable form.
_BULKY = frozenset({semconv.LLM_PROMPT_TOKEN_IDS, semconv.LLM_RESPONSE_TOKEN_IDS, semconv.LLM_RESPONSE_LOGPROBS})

_STATUS = {SPAN_STATUS_CODE_OK: "ok", SPAN_STATUS_CODE_ERROR: "error"}


def _ms(nanos: int) -> float:
    return nanos / 1e6


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > ATTRIBUTE_CHARS:
        return value[:ATTRIBUTE_CHARS] + f"… ({len(value)} chars)"
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list) and len(value) > 64:
        return [*value[:64], f"… ({len(value)} items)"]
    return value


def _kind(node: SpanNode) -> str:
    attributes = node.attributes
    if attributes.get(semconv.GEN_AI_OPERATION) in semconv.LLM_OPERATIONS:
        return "llm"
    if node.name == semconv.SPAN_REWARD:
        return "reward"
    if node.name == semconv.SPAN_ROLLOUT:
        return "rollout"
    if node.name == semconv.SPAN_EXCEPTION or (
        node.span is not None and node.span.status.code == SPAN_STATUS_CODE_ERROR
    ):
        return "error"
    return str(attributes.get(semconv.OPERATION) or "span")


def timeline(tree: TraceTree) -> list[dict[str, Any]]:
    """The tree depth first, each span with its depth, times in unix milliseconds and attributes."""
    rows: list[dict[str, Any]] = []
    stack = [(child, 0) for child in reversed(tree.root.children)]
    while stack:
        node, depth = stack.pop()
        span = node.span
        rows.append(
            {
                "name": node.name if span is not None else "(missing parent span)",
                "kind": _kind(node) if span is not None else "missing",
                "depth": depth,
                "attempt_id": node.attempt_id,
                "span_id": node.span_id.hex(),
                "sequence_id": node.sequence_id,
                "start_ms": _ms(node.start),
                "end_ms": _ms(node.end),
                "status": _STATUS.get(span.status.code, "unset") if span is not None else "unset",
                "status_message": span.status.message if span is not None else "",
                "attributes": {k: _short(v) for k, v in node.attributes.items() if k not in _BULKY},
            }
        )
        stack.extend((child, depth + 1) for child in reversed(node.children))
    return rows


def _messages(content: Any) -> list[dict[str, Any]]:
    """A prompt or response as a list of chat messages (a text prompt becomes one user message)."""
    if isinstance(content, list):
        return [m if isinstance(m, dict) else {"role": "user", "content": m} for m in content]
    if isinstance(content, dict):
        return [content]
    if content is None:
        return []
    return [{"role": "user", "content": content}]


def llm_calls(spans: Sequence[Span]) -> list[dict[str, Any]]:
    """Each LLM call with its messages, token counts and the reward matched to it."""
    # Every call is shown (judges and calls without token ids too): the page explains, it does not train.
    adapter = TracerTraceToTriplet(exclude_llm_call_in_reward=False, dedupe=False)
    calls = []
    for triplet in adapter.adapt(spans):
        meta = triplet.metadata
        usage = meta.get("usage") or {}
        calls.append(
            {
                "span_id": meta.get("span_id"),
                "attempt_id": meta.get("attempt_id"),
                "sequence_id": meta.get("sequence_id"),
                "model": meta.get("model"),
                "agent_name": meta.get("agent_name"),
                "response_id": meta.get("response_id"),
                "finish_reason": meta.get("finish_reason"),
                "messages": _messages(triplet.prompt.content),
                "response": _messages(triplet.response.content),
                "input_tokens": usage.get("prompt_tokens", len(triplet.prompt.token_ids) or None),
                "output_tokens": usage.get("completion_tokens", len(triplet.response.token_ids) or None),
                "prompt_token_ids": len(triplet.prompt.token_ids),
                "response_token_ids": len(triplet.response.token_ids),
                "reward": triplet.reward,
            }
        )
    return calls


def rewards(spans: Sequence[Span]) -> list[dict[str, Any]]:
    """Every reward emitted, in order, with all its named values."""
    return [
        {
            "attempt_id": span.attempt_id,
            "span_id": span.span_id.hex(),
            "time_ms": _ms(span.end_time_unix_nano),
            "values": get_rewards(span),
        }
        for span in find_reward_spans(spans)
        if isinstance(span, Span)
    ]


def final_reward(spans: Sequence[Span]) -> float | None:
    """The rollout's reward as the algorithms read it: the last reward of the given spans."""
    return find_final_reward(spans)


def trace_view(spans: Sequence[Span]) -> dict[str, Any]:
    return {
        "spans": timeline(TraceTree(spans)),
        "llm_calls": llm_calls(spans),
        "rewards": rewards(spans),
    }
