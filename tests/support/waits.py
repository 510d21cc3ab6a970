"""Waiting in tests for state the store announces on no stream: a condition re-read under a deadline.

Where the store has an event for what a test waits for (watch_rollouts, wait_for_rollouts, a long
poll), tests use it; these helpers are for the rest (worker records, a long poll parked on the
server). They never guess how long something takes: they return as soon as the condition holds and
fail, naming what did not happen, at the deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from agl_core.types import WorkerStatus

RECHECK_SECONDS = 0.02


async def until(check: Callable[[], Awaitable[bool]], *, timeout: float, what: str) -> None:
    """Return once ``check()`` is true; raise AssertionError naming ``what`` after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():  # noqa: ASYNC110  # nothing to wait on: see the module docstring
                await asyncio.sleep(RECHECK_SECONDS)
    except TimeoutError:
        raise AssertionError(f"{what} did not happen within {timeout:g}s") from None


async def until_polling(store: object, worker_id: str, *, timeout: float = 60.0) -> None:
    """Return once ``worker_id``'s long poll (DequeueRollout with a wait) is parked on the store:
    before it parks, the store records the worker as idle."""

    async def parked() -> bool:
        worker = await store.get_worker(worker_id)  # type: ignore[attr-defined]
        return worker is not None and worker.status == WorkerStatus.IDLE

    await until(parked, timeout=timeout, what=f"a long poll of worker {worker_id!r}")
