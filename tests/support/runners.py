"""Runners for tests that need agents served: agl's own :class:`~agl_core.runner.Runner`, taking
work on agl-server's Work stream, running an ``agent(rollout, llm)`` coroutine inside the tracer's
trace context."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from agl_core.client import GrpcStore
from agl_core.litagent import rollout as rollout_agent
from agl_core.runner import Runner, WorkStreamSource
from agl_core.tracer import Tracer
from agl_core.types import LLM, NamedResources, Rollout

Agent = Callable[[Rollout, LLM], Awaitable[Any]]


@contextlib.asynccontextmanager
async def runners(
    store: GrpcStore, tracer: Tracer, agent: Agent, *, count: int = 2, resource: str = "main_llm"
) -> AsyncIterator[list[Runner]]:
    """``count`` runners (capacity 1 each) serving ``agent`` until the block ends. The agent gets
    the resource named ``resource``; one that raises fails its attempt (the Runner records why).

    At the end the runners drain (attempts in flight finish) for a few seconds, then are cancelled:
    a test may leave an agent hanging on purpose.
    """

    @rollout_agent
    async def served(task: Any, rollout: Rollout, resources: NamedResources) -> Any:
        return await agent(rollout, resources[resource])  # type: ignore[arg-type]

    stop = asyncio.Event()
    served_by = [
        Runner(
            served,
            store=store,
            source=WorkStreamSource(store.address, worker_id=f"worker-{i}", capacity=1),
            tracer=tracer,
        )
        for i in range(count)
    ]
    tasks = [asyncio.create_task(runner.run(stop)) for runner in served_by]
    try:
        yield served_by
    finally:
        stop.set()
        _, pending = await asyncio.wait(tasks, timeout=5)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
