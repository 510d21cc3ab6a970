"""Wakes whoever hands out work when rollouts are queued, by following the store's event log.

Work is claimed with a non-waiting dequeue and, when the queue is empty, the claimer waits on
this signal rather than inside a long-poll dequeue: a long poll cannot be abandoned safely once
it has started claiming (the claim would commit for a worker that is gone), while waiting on an
event can be abandoned at any moment. agl-server runs one for all its Work streams; an embedded
runner runs its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_core.types.core import RolloutStatus

logger = logging.getLogger(__name__)

QUEUED_PB = (t.ROLLOUT_STATUS_QUEUING, t.ROLLOUT_STATUS_REQUEUING)

# Follows queue events after an event id (None: from now). The first item it yields confirms the
# subscription; each item is (event log position, whether rollouts were queued).
Follow = Callable[[int | None], AsyncIterator[tuple[int, bool]]]


class QueueSignal:
    """An event that fires whenever a rollout enters the queue.

    Take :meth:`current` *before* looking at the queue and wait on it if the queue was empty: a
    rollout queued in between still wakes the waiter.
    """

    def __init__(self, follow: Follow, name: str = "agl-queue-signal") -> None:
        self._follow_events = follow
        self._name = name
        self._event = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the loop, without waiting) every time the signal fires: for a
        single long-lived waiter that also waits for other things (agl-server's dispatcher)."""
        self._listeners.append(callback)

    def current(self) -> asyncio.Event:
        return self._event

    async def ready(self) -> None:
        """Start following (once) and return when the subscription is in place: no rollout queued
        from then on goes unnoticed."""
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name=self._name)
        await self._subscribed.wait()

    def fire(self) -> None:
        fired, self._event = self._event, asyncio.Event()
        fired.set()
        for callback in self._listeners:
            callback()

    async def _follow(self) -> None:
        last: int | None = None
        failures = 0
        while True:
            try:
                async for position, queued in self._follow_events(last):
                    failures = 0
                    first = not self._subscribed.is_set()
                    last = position
                    self._subscribed.set()
                    if queued or first:
                        self.fire()
                return  # the store closed
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                logger.warning("following the queue failed (%s); following again from event %s", exc, last)
                self.fire()  # whatever happened meanwhile, claimers look at the queue again
                await asyncio.sleep(min(0.05 * 2**failures, 2.0))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._subscribed.set()
        self.fire()


def backend_follow(backend: Any) -> Follow:
    """Follow the queue through a :class:`~agl_core.store.backend.StoreBackend` (on its loop)."""

    async def follow(after: int | None) -> AsyncIterator[tuple[int, bool]]:
        # Every namespace: one signal serves the Work streams of all of them.
        request = s.WatchRolloutsRequest(status_in=QUEUED_PB, all_namespaces=True)
        if after is not None:
            request.after_event_id = after
        async for response in backend.watch_rollouts(request):
            yield response.last_event_id, bool(response.events)

    return follow


def store_follow(store: Any) -> Follow:
    """Follow the queue through the :class:`~agl_core.store.LightningStore` API (any store,
    ``ThreadSafeStore`` included)."""

    async def follow(after: int | None) -> AsyncIterator[tuple[int, bool]]:
        if after is None:
            after = int((await store.stats())["last_event_id"])
        yield after, False
        async for event in store.watch_rollouts(
            status_in=[RolloutStatus.QUEUING, RolloutStatus.REQUEUING], after_event_id=after
        ):
            yield event.event_id, True

    return follow
