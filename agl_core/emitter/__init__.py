"""Emitters: record rewards, messages, objects and exceptions as spans of the running attempt.

Each works inside a trace context (the runner opens one around every attempt, or
``tracer.trace_context(...)``) and raises :class:`~agl_core.tracer.NoTraceContextError` outside one.
The attribute names are in :mod:`agl_core.semconv`.
"""

from agl_core.emitter.events import emit_exception, emit_message, emit_object, get_object
from agl_core.emitter.reward import (
    emit_reward,
    find_final_reward,
    find_reward_spans,
    get_reward_value,
    get_rewards,
    is_reward_span,
)

__all__ = [
    "emit_exception",
    "emit_message",
    "emit_object",
    "emit_reward",
    "find_final_reward",
    "find_reward_spans",
    "get_object",
    "get_reward_value",
    "get_rewards",
    "is_reward_span",
]
