"""A small worker loop for tests that need runners: dequeue with a wait, run the agent inside the
tracer's trace context, finish the attempt. It stands in for agl's Runner until that lands on main;
:func:`runners` is the seam to switch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from agl_core.store import LightningStore
from agl_core.tracer import Tracer
from agl_core.types import LLM, Rollout

Agent = Callable[[Rollout, LLM], Awaitable[None]]


@contextlib.asynccontextmanager
async def runners(
    store: LightningStore, tracer: Tracer, agent: Agent, *, count: int = 2, resource: str = "main_llm"
) -> AsyncIterator[None]:
    """``count`` workers taking rollouts until the block ends; an agent that raises fails its attempt.

    At the end, workers waiting for work finish their wait (a dequeue cancelled on the client side
    may still claim a rollout on the server) and workers still inside an agent are cancelled.
    """
    stop = asyncio.Event()
    busy: dict[str, asyncio.Task[None]] = {}

    async def run_one(name: str, rollout: Rollout) -> None:
        assert rollout.attempt is not None
        attempt_id = rollout.attempt.attempt_id
        resources = await store.get_resources(rollout.resources_id) if rollout.resources_id else None
        llm: Any = resources.resources[resource] if resources else None
        status = "succeeded"
        try:
            async with tracer.trace_context(name, store=store, rollout_id=rollout.rollout_id, attempt_id=attempt_id):
                await agent(rollout, llm)
        except Exception:
            status = "failed"
        await store.update_attempt(rollout.rollout_id, attempt_id, status=status)

    async def work(name: str) -> None:
        while not stop.is_set():
            rollout = await store.dequeue_rollout(worker_id=name, wait=0.5)
            if rollout is None or rollout.attempt is None:
                continue
            busy[name] = asyncio.create_task(run_one(name, rollout))
            try:
                await asyncio.gather(busy[name], return_exceptions=True)
            finally:
                del busy[name]

    workers = [asyncio.create_task(work(f"worker-{i}")) for i in range(count)]
    try:
        yield
    finally:
        stop.set()
        for task in list(busy.values()):
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
