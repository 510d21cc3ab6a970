"""What an agent's return value becomes in the store (the return conventions of ``LitAgent``),
and the spans a runner writes itself: the reward of a number, the exception of a failure."""

from __future__ import annotations

import logging
import math
import traceback
from typing import Any

from agl_core import semconv
from agl_core.emitter.reward import reward_attributes
from agl_core.proto.trace_pb2 import Span, SpanStatusCode
from agl_core.tracer.base import Tracer
from agl_core.types.core import Rollout
from agl_core.types.spans import new_span

logger = logging.getLogger(__name__)


def _ids(rollout: Rollout) -> tuple[str, str]:
    assert rollout.attempt is not None, "a runner only runs rollouts with an attempt"
    return rollout.rollout_id, rollout.attempt.attempt_id


def reward_span(rollout: Rollout, value: float) -> Span:
    """The ``agl.reward`` span of a final reward, with the attributes ``emit_reward`` writes."""
    rollout_id, attempt_id = _ids(rollout)
    return new_span(
        semconv.SPAN_REWARD, rollout_id=rollout_id, attempt_id=attempt_id, attributes=reward_attributes(value)
    )


def exception_span(rollout: Rollout, error: BaseException) -> Span:
    """The ``agl.exception`` span of what failed an attempt (OpenTelemetry's exception attributes)."""
    rollout_id, attempt_id = _ids(rollout)
    span = new_span(
        semconv.SPAN_EXCEPTION,
        rollout_id=rollout_id,
        attempt_id=attempt_id,
        attributes={
            semconv.EXCEPTION_TYPE: f"{type(error).__module__}.{type(error).__qualname__}",
            semconv.EXCEPTION_MESSAGE: str(error),
            semconv.EXCEPTION_STACKTRACE: "".join(traceback.format_exception(error)),
        },
    )
    span.status.code = SpanStatusCode.SPAN_STATUS_CODE_ERROR
    span.status.message = str(error)[:1000]
    return span


async def deliver(result: Any, *, rollout: Rollout, tracer: Tracer, store: Any) -> list[Span]:
    """Store what the agent returned, per the return conventions; returns the attempt's spans
    as far as the runner knows them.

    :raises TypeError: for a return value that is none of None, a number, or a list of spans.
    :raises ValueError: for a non-finite reward, or spans of another attempt.
    """
    rollout_id, attempt_id = _ids(rollout)
    # Read before anything awaits: another attempt's trace may end meanwhile and become the last.
    traced = list(tracer.get_last_trace())
    if result is None:
        return traced
    if isinstance(result, (bool, int, float)):
        if isinstance(result, bool):
            logger.warning("rollout %s returned a bool; storing it as the reward %.1f", rollout_id, float(result))
        if not math.isfinite(float(result)):
            raise ValueError(f"the agent returned the reward {result}; a reward must be a finite number")
        span = reward_span(rollout, float(result))
        await _store(store, [span])
        return [*traced, span]
    if isinstance(result, list):
        if not result:
            logger.warning("rollout %s returned an empty list: the attempt has no spans of its own", rollout_id)
            return traced
        wrong = [type(item).__name__ for item in result if not isinstance(item, Span)]
        if wrong:
            raise TypeError(
                f"the agent returned a list with {', '.join(sorted(set(wrong)))} items; a rollout returns "
                "None, a "
                "reward (a number) or a list of spans (agl_core.types.Span, e.g. from new_span())"
            )
        for span in result:
            if not span.rollout_id:
                span.rollout_id = rollout_id
            if not span.attempt_id:
                span.attempt_id = attempt_id
            if (span.rollout_id, span.attempt_id) != (rollout_id, attempt_id):
                raise ValueError(
                    f"the agent returned a span of rollout {span.rollout_id!r} attempt {span.attempt_id!r} "
                    "while "
                    f"running attempt {attempt_id!r} of rollout {rollout_id!r}"
                )
        await _store(store, result)
        return list(result)
    raise TypeError(
        f"the agent returned a {type(result).__name__}; a rollout returns None (the tracer's spans), "
        "a reward "
        "(a number) or a list of spans"
    )


async def _store(store: Any, spans: list[Span]) -> None:
    """Store spans and make sure every one was taken (returns once they are durable)."""
    result = await store.add_spans(spans)
    if result.rejected:
        index, error = result.rejected[0]
        raise ValueError(f"the store rejected span {spans[index].name!r}: {error}")
