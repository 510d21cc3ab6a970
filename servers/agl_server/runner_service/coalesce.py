"""Small store writes of all Work streams, coalesced: those asked for while one write is in flight
wait and go together in the next, as one store operation. A fleet's heartbeats come by the
thousand, and one operation each would queue them in the store's writer ahead of the dispatcher's
claims (see worker_writes.py and attempt_heartbeats.py for what each costs and saves).

Each caller still returns only once its own item is durable, or raises what became of it; items
are written in the order they were asked for (one write in flight at a time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Writes items through ``write_many``, which stores a list of them and says what became of
    each, in order: None when written, else the exception for its caller. One call in flight at a
    time, at most ``max_per_write`` items each."""

    def __init__(self, write_many: Callable[[list[T]], Awaitable[list[BaseException | None]]], max_per_write: int):
        self._write_many = write_many
        self._max = max_per_write
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._writing: asyncio.Task[None] | None = None
        self.writes = 0  # calls of write_many made
        self.items = 0  # items written through them

    async def submit(self, item: T) -> None:
        """Write ``item``; returns once it is durable (or raises what the store raised for it)."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writing is None:
            self._writing = asyncio.ensure_future(self._drain())
        # A caller that gives up cancels only its own future; the write goes on for the others.
        await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max], self._waiting[self._max :]
                try:
                    outcomes = await self._write_many([item for item, _ in batch])
                except Exception as exc:  # the store is closing, the disk failed: every caller hears of it
                    outcomes = [exc] * len(batch)
                self.writes += 1
                self.items += len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if outcome is None:
                        future.set_result(None)
                    else:
                        future.set_exception(outcome)
        finally:
            self._writing = None
