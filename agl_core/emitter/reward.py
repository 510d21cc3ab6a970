"""Rewards: ``emit_reward`` records them as spans; the other functions read them back.

A reward span is named ``agl.reward`` and carries (see :mod:`agl_core.semconv`):

- ``agl.reward.value`` (double): the primary reward, what algorithms optimise;
- ``agl.reward.name`` (string): its name, ``"reward"`` for a scalar;
- ``agl.reward.values.<name>`` (double): every named reward, the primary included;
- ``agl.reward.response_id`` (string, optional): the LLM call the reward is for.

Spans from other languages may instead carry the named rewards as one kvlist attribute
``agl.reward.values``; the readers accept both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agl_core import semconv
from agl_core.emitter._record import SpanLike, attribute, attributes_of, record_span
from agl_core.proto.trace_pb2 import Span


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where} must be a number, not {type(value).__name__} ({value!r})")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{where} is {number}; rewards must be finite numbers")
    return number


def reward_attributes(
    reward: float | Mapping[str, float],
    *,
    primary: str | None = None,
    response_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The attributes of an ``agl.reward`` span, as :func:`emit_reward` writes them (for code that
    builds reward spans itself, like a runner turning a returned number into a reward)."""
    if isinstance(reward, Mapping):
        if not reward:
            raise ValueError("emit_reward got an empty dict; give at least one named reward")
        values = {str(name): _number(value, f"reward {name!r}") for name, value in reward.items()}
        if primary is None:
            if len(values) > 1:
                raise ValueError(
                    f"emit_reward got {len(values)} rewards ({', '.join(values)}); name the one to optimise with "
                    "primary=..."
                )
            primary = next(iter(values))
        elif primary not in values:
            raise ValueError(f"primary={primary!r} is not one of the rewards given ({', '.join(values)})")
    else:
        if primary is not None:
            raise ValueError("primary= names one of several rewards; a single number needs no primary")
        primary = "reward"
        values = {primary: _number(reward, "reward")}
    span_attributes: dict[str, Any] = dict(attributes or {})
    span_attributes[semconv.REWARD_VALUE] = values[primary]
    span_attributes[semconv.REWARD_NAME] = primary
    for name, value in values.items():
        span_attributes[semconv.REWARD_VALUES_PREFIX + name] = value
    if response_id:
        span_attributes[semconv.REWARD_RESPONSE_ID] = response_id
    return span_attributes


def emit_reward(
    reward: float | Mapping[str, float],
    *,
    primary: str | None = None,
    response_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Any:
    """Record a reward in the current trace context.

    :param reward: a number, or several named numbers (``{"correct": 1.0, "length": -0.2}``).
    :param primary: with several rewards, the name of the one algorithms optimise (required unless
        there is only one).
    :param response_id: the ``id`` of the LLM response the reward is for; adapters then give it to
        that call whatever their matching policy.
    :param attributes: further attributes of the span.
    :returns: the recorded OpenTelemetry span.
    :raises NoTraceContextError: outside a trace context.
    :raises ValueError: for a non-finite reward, an unknown or missing primary name.
    """
    span_attributes = reward_attributes(reward, primary=primary, response_id=response_id, attributes=attributes)
    return record_span(semconv.SPAN_REWARD, span_attributes, what="emit_reward()")


def is_reward_span(span: SpanLike) -> bool:
    """Whether ``span`` records a reward (an ``agl.reward`` span with a value)."""
    return span.name == semconv.SPAN_REWARD and get_reward_value(span) is not None


def get_reward_value(span: SpanLike) -> float | None:
    """The primary reward of a reward span; None for other spans or a reward span without a value."""
    if span.name != semconv.SPAN_REWARD:
        return None
    value = attribute(span, semconv.REWARD_VALUE)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    rewards = get_rewards(span)
    name = attribute(span, semconv.REWARD_NAME)
    if name in rewards:
        return rewards[name]
    return next(iter(rewards.values())) if len(rewards) == 1 else None


def get_rewards(span: SpanLike) -> dict[str, float]:
    """Every named reward of a reward span (``{}`` for other spans)."""
    if span.name != semconv.SPAN_REWARD:
        return {}
    rewards: dict[str, float] = {}
    for key, value in attributes_of(span).items():
        if key == semconv.REWARD_VALUES and isinstance(value, Mapping):
            rewards.update({str(k): float(v) for k, v in value.items() if _is_number(v)})
        elif key.startswith(semconv.REWARD_VALUES_PREFIX) and _is_number(value):
            rewards[key[len(semconv.REWARD_VALUES_PREFIX) :]] = float(value)
    if not rewards:
        value = attribute(span, semconv.REWARD_VALUE)
        if _is_number(value):
            rewards[str(attribute(span, semconv.REWARD_NAME) or "reward")] = float(value)
    return rewards


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _order(span: SpanLike) -> tuple[int, int]:
    if isinstance(span, Span):
        return span.end_time_unix_nano, span.sequence_id
    return span.end_time or 0, 0


def find_reward_spans(spans: Iterable[SpanLike]) -> list[SpanLike]:
    """The reward spans among ``spans``, in the order they were emitted."""
    return sorted((span for span in spans if is_reward_span(span)), key=_order)


def find_final_reward(spans: Sequence[SpanLike] | Iterable[SpanLike]) -> float | None:
    """The primary value of the last reward emitted, or None if there is none."""
    rewards = find_reward_spans(spans)
    return get_reward_value(rewards[-1]) if rewards else None


__all__ = [
    "emit_reward",
    "find_final_reward",
    "find_reward_spans",
    "get_reward_value",
    "get_rewards",
    "is_reward_span",
    "reward_attributes",
]
