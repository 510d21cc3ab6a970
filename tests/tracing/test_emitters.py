"""Emitters record rewards, messages, objects and exceptions as spans; readers get them back."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from dataclasses import dataclass

import pytest

from agl_core import new_span, semconv
from agl_core.emitter import (
    emit_exception,
    emit_message,
    emit_object,
    emit_reward,
    find_final_reward,
    find_reward_spans,
    get_object,
    get_reward_value,
    get_rewards,
    is_reward_span,
)
from agl_core.proto import trace_pb2
from agl_core.tracer import NoTraceContextError, OtelTracer, bind_context
from agl_core.types import span_attributes


@dataclass
class Answer:
    text: str
    score: float


def test_rewards_scalar_and_named(tracer: OtelTracer) -> None:
    with tracer.trace_context_sync("agent") as trace_:
        emit_reward(0.25)
        emit_reward({"correct": 1.0, "length": -0.5}, primary="correct", response_id="chatcmpl-7")
        emit_reward({"only": 3})
    scalar, named, single = [s for s in trace_.spans if s.name == semconv.SPAN_REWARD]
    assert get_reward_value(scalar) == 0.25
    assert get_rewards(scalar) == {"reward": 0.25}
    assert get_reward_value(named) == 1.0
    assert get_rewards(named) == {"correct": 1.0, "length": -0.5}
    attributes = span_attributes(named)
    assert attributes[semconv.REWARD_NAME] == "correct"
    assert attributes[semconv.REWARD_RESPONSE_ID] == "chatcmpl-7"
    assert attributes["agl.reward.values.length"] == -0.5
    assert get_reward_value(single) == 3.0
    assert find_final_reward(trace_.spans) == 3.0
    assert [get_reward_value(s) for s in find_reward_spans(trace_.spans)] == [0.25, 1.0, 3.0]
    root = next(s for s in trace_.spans if s.name == "agent")
    assert not is_reward_span(root) and get_reward_value(root) is None
    assert {s.parent_span_id for s in (scalar, named, single)} == {root.span_id}


@pytest.mark.parametrize(
    ("reward", "primary", "error", "message"),
    [
        (math.nan, None, ValueError, "must be finite"),
        (True, None, TypeError, "must be a number"),
        ("1", None, TypeError, "must be a number"),
        ({"a": 1.0, "b": 2.0}, None, ValueError, "name the one to optimise with primary"),
        ({"a": 1.0}, "b", ValueError, "primary='b' is not one of"),
        ({}, None, ValueError, "empty dict"),
        (1.0, "a", ValueError, "needs no primary"),
    ],
)
def test_bad_rewards_are_refused(
    tracer: OtelTracer, reward: object, primary: str | None, error: type[Exception], message: str
) -> None:
    with tracer.trace_context_sync() as trace_:
        with pytest.raises(error, match=message):
            emit_reward(reward, primary=primary)  # type: ignore[arg-type]
    assert [s.name for s in trace_.spans] == [semconv.SPAN_ROLLOUT]


def test_message_object_and_exception(tracer: OtelTracer) -> None:
    with tracer.trace_context_sync() as trace_:
        emit_message("thinking about it", attributes={"step": 2})
        emit_object(Answer("42", 0.9))
        emit_object({"k": [1, 2]}, type_name="plan")
        try:
            raise KeyError("missing")
        except KeyError as exc:
            emit_exception(exc)
    message, answer, plan, error = trace_.spans[:4]
    assert span_attributes(message) == {semconv.MESSAGE_BODY: "thinking about it", "step": 2}
    assert get_object(answer) == {"text": "42", "score": 0.9}
    assert span_attributes(answer)[semconv.OBJECT_TYPE].endswith("test_emitters.Answer")
    assert get_object(plan) == {"k": [1, 2]} and span_attributes(plan)[semconv.OBJECT_TYPE] == "plan"
    attributes = span_attributes(error)
    assert error.name == semconv.SPAN_EXCEPTION
    assert attributes[semconv.EXCEPTION_TYPE] == "KeyError"
    assert attributes[semconv.EXCEPTION_MESSAGE] == "'missing'"
    assert 'raise KeyError("missing")' in attributes[semconv.EXCEPTION_STACKTRACE]
    assert error.status.code == trace_pb2.SPAN_STATUS_CODE_ERROR


def test_objects_json_cannot_hold_are_refused(tracer: OtelTracer) -> None:
    with tracer.trace_context_sync():
        with pytest.raises(TypeError, match="cannot be written as JSON"):
            emit_object({"f": object()})
        with pytest.raises(TypeError, match="takes a str"):
            emit_message(b"bytes")  # type: ignore[arg-type]


def test_emitters_outside_a_trace_context_fail_clearly() -> None:
    for call in (
        lambda: emit_reward(1.0),
        lambda: emit_message("x"),
        lambda: emit_object(1),
        lambda: emit_exception(ValueError()),
    ):
        with pytest.raises(NoTraceContextError, match=r"outside a trace context.*trace_context"):
            call()


async def test_emitters_follow_the_context_into_tasks_and_threads(tracer: OtelTracer) -> None:
    async with tracer.trace_context("agent") as trace_:
        await asyncio.gather(asyncio.create_task(_reward_later(0.1)), asyncio.to_thread(emit_reward, 0.2))
        worker = threading.Thread(target=bind_context(emit_reward), args=(0.3,))
        worker.start()
        worker.join()
    assert sorted(get_reward_value(s) for s in find_reward_spans(trace_.spans)) == [0.1, 0.2, 0.3]

    # A plain thread has no context: the emitter says so instead of recording nowhere.
    errors: list[BaseException] = []
    async with tracer.trace_context("agent"):
        worker = threading.Thread(target=lambda: _capture(errors, lambda: emit_reward(1.0)))
        worker.start()
        worker.join()
    assert len(errors) == 1 and isinstance(errors[0], NoTraceContextError)


async def _reward_later(value: float) -> None:
    await asyncio.sleep(0)
    emit_reward(value)


def _capture(errors: list[BaseException], fn: object) -> None:
    try:
        fn()  # type: ignore[operator]
    except BaseException as exc:
        errors.append(exc)


def test_readers_accept_rewards_from_other_languages() -> None:
    # An OTLP exporter can send the named rewards as one kvlist attribute.
    span = new_span(
        semconv.SPAN_REWARD,
        rollout_id="ro",
        attempt_id="at",
        attributes={semconv.REWARD_VALUES: {"win": 1.0, "cost": -2}, semconv.REWARD_NAME: "win"},
    )
    assert get_rewards(span) == {"win": 1.0, "cost": -2.0}
    assert get_reward_value(span) == 1.0
    bare = new_span(semconv.SPAN_REWARD, rollout_id="ro", attempt_id="at", attributes={semconv.REWARD_VALUE: 2})
    assert get_reward_value(bare) == 2.0 and get_rewards(bare) == {"reward": 2.0}
    not_reward = new_span("other", rollout_id="ro", attempt_id="at", attributes={semconv.REWARD_VALUE: 5.0})
    assert get_reward_value(not_reward) is None and find_final_reward([not_reward]) is None
    assert json.loads(json.dumps(get_rewards(span)))  # plain floats
