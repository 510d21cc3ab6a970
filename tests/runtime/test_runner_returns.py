"""What an agent returns becomes the attempt's outcome, on both stores: a reward, spans, a trace,
a failure with its exception span, or a refusal of what is not a convention."""

from __future__ import annotations

from runner_runs import ListTracer, Setup, conventions, run_all

from agl_core import semconv
from agl_core.types import (
    RolloutStatus,
    Span,
    span_attributes,
)


async def test_return_conventions(setup: Setup) -> None:
    tracer = ListTracer()
    inputs = ["float", "spans", "traced", "raise", "dict"]
    results = dict(zip(inputs, await run_all(setup, conventions, inputs, tracer=tracer), strict=True))

    async def spans_of(task: str) -> list[Span]:
        return await setup.store.query_spans(results[task].rollout_id)

    assert results["float"].status == RolloutStatus.SUCCEEDED
    [reward] = await spans_of("float")
    assert reward.name == semconv.SPAN_REWARD and span_attributes(reward)[semconv.REWARD_VALUE] == 0.75
    assert results["float"].attempt.metadata["reward"] == 0.75

    assert [s.name for s in await spans_of("spans")] == ["my.step", semconv.SPAN_REWARD]
    assert all(s.attempt_id == results["spans"].attempt.attempt_id for s in await spans_of("spans"))
    assert results["spans"].attempt.metadata["reward"] == 0.25

    assert [s.name for s in await spans_of("traced")] == ["chat gpt", semconv.SPAN_REWARD]
    assert results["traced"].attempt.metadata["reward"] == 0.5

    for task, error_type, words in (
        ("raise", "ValueError", "too hard"),
        ("dict", "TypeError", "returned a dict"),
    ):
        assert results[task].status == RolloutStatus.FAILED
        [failure] = await spans_of(task)
        attributes = span_attributes(failure)
        assert failure.name == semconv.SPAN_EXCEPTION
        assert (
            attributes[semconv.EXCEPTION_TYPE].endswith(error_type) and words in attributes[semconv.EXCEPTION_MESSAGE]
        )
        assert "Traceback" in attributes[semconv.EXCEPTION_STACKTRACE]
        assert results[task].attempt.metadata["error_type"] == error_type
