"""Small store writes of all Work streams, coalesced: those asked for while one write is in flight
wait and go together in the next, as one store operation. A fleet's heartbeats come by the
thousand, and one operation each would queue them in the store's writer ahead of the dispatcher's
claims (see worker_writes.py and attempt_heartbeats.py for what each costs and saves).

Each caller still returns only once its own item is durable, or raises what became of it; items
are written in the order they were asked for (one write in flight at a time).

Heartbeats need not be durable at once: nobody waits on them but the watchdog, which allows three
silent intervals (seconds). A write of only such items (``urgent=False``) waits ``linger`` seconds
for more before it goes: heartbeats arriving while the store's writer is idle would otherwise each
start a group commit, with its syncs, of their own. An urgent item (a stream's welcome or end)
sends what waits at once, in order, itself included.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# How long heartbeats wait for others: at 256 workers beating every second, about five go together,
# and a beat is durable at most this much later than it would be (against intervals of seconds).
HEARTBEAT_LINGER = 0.02


async def outcomes(*writes: Awaitable[Any]) -> list[BaseException | None]:
    """Run ``writes`` at once; what became of each, in order: None when it succeeded, else its error."""
    results = await asyncio.gather(*writes, return_exceptions=True)
    return [result if isinstance(result, BaseException) else None for result in results]


class Coalescer(Generic[T]):
    """Writes items through ``write_many``, which stores a list of them and says what became of
    each, in order: None when written, else the exception for its caller. One call in flight at a
    time, at most ``max_per_write`` items each. Without ``write_many`` (a backend that has no such
    call, a plugin's), each item is written alone through ``write_one``, as it comes."""

    def __init__(
        self,
        write_many: Callable[[list[T]], Awaitable[list[BaseException | None]]] | None,
        write_one: Callable[[T], Awaitable[Any]],
        max_per_write: int,
        linger: float = 0.0,
    ):
        self._write_many = write_many
        self._write_one = write_one
        self._max = max_per_write
        self._linger = linger
        self._waiting: list[tuple[T, asyncio.Future[None], bool]] = []
        self._hurry = asyncio.Event()  # set when an urgent item, or a full write's worth, waits
        self._writing: asyncio.Task[None] | None = None
        self.writes = 0  # store writes made: calls of write_many, or of write_one without it
        self.items = 0  # items written

    async def submit(self, item: T, *, urgent: bool = True) -> None:
        """Write ``item``; returns once it is durable (or raises what the store raised for it).
        ``urgent=False``: it may wait up to ``linger`` seconds for others to go with it."""
        if self._write_many is None:
            await self._write_one(item)
            self.writes += 1
            self.items += 1
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future, urgent))
        if urgent or len(self._waiting) >= self._max:
            self._hurry.set()
        if self._writing is None:
            self._writing = asyncio.ensure_future(self._drain())
        # A caller that gives up cancels only its own future; the write goes on for the others.
        await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                if self._linger and not self._hurry.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._linger):  # the batching window; something urgent ends it
                            await self._hurry.wait()
                batch, self._waiting = self._waiting[: self._max], self._waiting[self._max :]
                if not any(urgent for _, _, urgent in self._waiting) and len(self._waiting) < self._max:
                    self._hurry.clear()
                assert self._write_many is not None
                try:
                    outcomes = await self._write_many([item for item, _, _ in batch])
                except Exception as exc:  # the store is closing, the disk failed: every caller hears of it
                    outcomes = [exc] * len(batch)
                self.writes += 1
                self.items += len(batch)
                for (_, future, _), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if outcome is None:
                        future.set_result(None)
                    else:
                        future.set_exception(outcome)
        finally:
            self._writing = None
