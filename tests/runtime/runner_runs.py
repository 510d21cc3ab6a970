"""What the runner tests share: a store with the work source a runner uses with it (embedded LMDB
claiming directly, or agl-server pushing work on the Work stream), a helper that serves inputs to
their end, a tracer small enough to read, and an agent showing every return convention."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from agl_core import semconv
from agl_core.litagent import LitAgent, rollout
from agl_core.runner import Runner, WorkSource
from agl_core.tracer.base import Tracer
from agl_core.types import (
    Rollout,
    Span,
    new_span,
)
from agl_server.process import ServerProcess


@dataclass
class Setup:
    """A store and the work source a runner uses with it."""

    store: Any
    source: Callable[..., WorkSource]
    server: ServerProcess | None = None


async def run_all(setup: Setup, agent: LitAgent[Any], inputs: list[Any], **runner_options: Any) -> list[Rollout]:
    """Enqueue ``inputs``, serve them with one runner until all are terminal, stop it."""
    rollouts = await setup.store.enqueue_rollouts([{"input": item} for item in inputs])
    capacity = runner_options.pop("capacity", 1)
    runner = Runner(agent, store=setup.store, source=setup.source(capacity=capacity), **runner_options)
    stop = asyncio.Event()
    serving = asyncio.create_task(runner.run(stop))
    done = await setup.store.wait_for_rollouts([r.rollout_id for r in rollouts], timeout=30)
    stop.set()
    await asyncio.wait_for(serving, 30)
    by_id = {r.rollout_id: r for r in done}
    return [by_id[r.rollout_id] for r in rollouts]


# --- a tracer small enough to read -----------------------------------------------------------------

_spans: contextvars.ContextVar[list[Span]] = contextvars.ContextVar("spans")


def record(name: str, **attributes: Any) -> None:
    """What an instrumented library would do inside a traced rollout."""
    _spans.get().append(new_span(name, rollout_id="", attempt_id="", attributes=attributes))


class ListTracer(Tracer):
    """Collects the spans recorded in a trace context and stores them when the context exits."""

    def __init__(self) -> None:
        self.last: list[Span] = []

    @asynccontextmanager
    async def trace_context(
        self,
        name: str | None = None,
        *,
        store: Any = None,
        rollout_id: str | None = None,
        attempt_id: str | None = None,
    ) -> AsyncIterator[list[Span]]:
        spans: list[Span] = []
        token = _spans.set(spans)
        try:
            yield spans
        finally:
            _spans.reset(token)
            for span in spans:
                span.rollout_id, span.attempt_id = rollout_id or "", attempt_id or ""
            if store is not None and spans:
                await store.add_spans(spans)
            self.last = spans

    @contextmanager
    def trace_context_sync(self, name: str | None = None, **kwargs: Any) -> Iterator[list[Span]]:
        raise NotImplementedError

    def get_last_trace(self) -> list[Span]:
        return list(self.last)


# --- an agent for every return convention -----------------------------------------------------------


@rollout
async def conventions(task: str, rollout: Rollout) -> Any:
    if task == "float":
        return 0.75
    if task == "spans":
        return [
            new_span("my.step", rollout_id="", attempt_id="", attributes={"n": 1}),
            new_span(semconv.SPAN_REWARD, rollout_id="", attempt_id="", attributes={semconv.REWARD_VALUE: 0.25}),
        ]
    if task == "traced":
        record("chat gpt", **{semconv.GEN_AI_OPERATION: "chat"})
        record(semconv.SPAN_REWARD, **{semconv.REWARD_VALUE: 0.5})
        return None
    if task == "raise":
        raise ValueError("the task was too hard")
    return {"not": "allowed"}
