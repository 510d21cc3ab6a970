"""Hands queued rollouts to the Work streams that have room, for all streams at once.

Each stream used to claim work for itself: a rollout entering the queue woke every idle stream
and each sent its own claim to the store's single writer, so with 1,000 idle workers one rollout
cost 1,000 claims (999 of them empty) and the time to hand it over grew with the number of
streams. Here one task claims for every waiting stream in one write operation per round
(:meth:`dequeue_for_workers` of the LMDB backend), for no more streams than there are rollouts
their routes match (a backend that cannot count them is asked stream by stream until a claim
comes back short). Streams with the same route (namespace, queues, selector) are served in the
order they began to wait, and a stream that got work and still has room goes to the back. What a
stream gets is pushed by that stream's own task, so a slow stream holds up no other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_core.runner.queue_signal import QueueSignal
from agl_core.store import routing, validation
from agl_core.store.backend import StoreBackend

logger = logging.getLogger("agl_server")

# Rollouts claimed in one round at most: one write transaction stays short, so reports and span
# writes queued behind it are not held up (a round of 1,024 claims commits in a few ms).
MAX_ROUND = 1024


class Claimant(Protocol):
    """What the dispatcher needs of a Work stream (:class:`~.session.WorkSession`)."""

    worker_id: str
    route: routing.Route
    # Claim its attempts RUNNING (the worker starts them when it gets them).
    start_on_assignment: bool

    def room(self) -> int:
        """Attempts the stream can take now (0 once it has stopped)."""
        ...

    def deliver(self, rollouts: list[t.Rollout]) -> bool:
        """Take claimed rollouts; False when the stream has stopped (they are handed back)."""
        ...

    def dequeue_request(self, limit: int) -> s.DequeueRolloutRequest:
        """A non-waiting claim of up to ``limit`` rollouts for this stream."""
        ...


class Dispatcher:
    """One per agl-server: claims for the Work streams that said they have room (:meth:`want`)."""

    def __init__(self, backend: StoreBackend, signal: QueueSignal) -> None:
        self.backend = backend
        self.signal = signal
        # Route -> streams waiting for work (a dict keeps their order: the oldest first).
        self._waiting: dict[routing.Route, dict[Claimant, None]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._releases: set[asyncio.Task[Any]] = set()
        # The LMDB backend claims for many workers in one write and knows what is queued; another
        # backend is asked stream by stream.
        self._claim_many = getattr(backend, "dequeue_for_workers", None)
        self._count = getattr(backend, "queued_matching", None)
        signal.add_listener(self._wake.set)
        self.rounds = 0

    def want(self, stream: Claimant) -> None:
        """``stream`` has room: it gets work as soon as matching rollouts are queued."""
        if stream.room() <= 0:
            return
        self._waiting.setdefault(stream.route, {})[stream] = None
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="agl-dispatcher")

    def forget(self, stream: Claimant) -> None:
        waiting = self._waiting.get(stream.route)
        if waiting is not None:
            waiting.pop(stream, None)
            if not waiting:
                del self._waiting[stream.route]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)

    # --- the rounds --------------------------------------------------------------------------------

    async def _run(self) -> None:
        await self.signal.ready()
        while True:
            self._wake.clear()  # before looking: a rollout queued (or a stream freed) meanwhile wakes us
            try:
                progressed = await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("handing out queued rollouts failed; trying again")
                progressed = False
                await asyncio.sleep(0.05)
            if not progressed:
                await self._wake.wait()

    def _claims(self) -> list[tuple[routing.Route, list[tuple[Claimant, int]]]]:
        """Per route with matching work queued, the waiting streams to claim for, oldest first, no
        more of them than the work there is (so one rollout queued is one claim, not one per
        waiting stream)."""
        groups: list[tuple[routing.Route, list[tuple[Claimant, int]]]] = []
        budget = MAX_ROUND
        for route, streams in list(self._waiting.items()):
            available = self._count(route, budget) if self._count is not None else budget
            group: list[tuple[Claimant, int]] = []
            for stream in list(streams):
                if available <= 0:
                    break
                room = min(stream.room(), validation.MAX_PAGE, available)
                if room <= 0:
                    self.forget(stream)
                    continue
                group.append((stream, room))
                available -= room
                budget -= room
            if group:
                groups.append((route, group))
            if budget <= 0:
                break
        return groups

    async def _round(self) -> bool:
        """Claim once for the waiting streams whose routes match queued work; whether any got some."""
        groups = self._claims()
        if not groups:
            return False
        self.rounds += 1
        results = await self._claim(groups)
        progressed = False
        for (_, group), claimed in zip(groups, results, strict=True):
            for (stream, _), rollouts in zip(group, claimed, strict=True):
                if not rollouts:
                    continue
                progressed = True
                if not stream.deliver(rollouts):
                    self._release(rollouts)  # the stream ended while its claim committed
                self.forget(stream)
                if stream.room() > 0:
                    self._waiting.setdefault(stream.route, {})[stream] = None  # to the back of its route
        return progressed

    async def _claim(
        self, groups: list[tuple[routing.Route, list[tuple[Claimant, int]]]]
    ) -> list[list[list[t.Rollout]]]:
        if self._claim_many is not None:
            result: list[list[list[t.Rollout]]] = await self._claim_many(
                [
                    (route, [(stream.worker_id, room, stream.start_on_assignment) for stream, room in group])
                    for route, group in groups
                ]
            )
            return result
        # Another backend: stream by stream, without waiting. It cannot say how much is queued, so
        # a claim that comes back short is the sign: the route's queue is empty and the streams
        # after it would get nothing (one rollout queued costs two claims, not one per waiting
        # stream). A rollout queued meanwhile wakes the next round.
        dequeue = self.backend.dequeue_rollout
        results: list[list[list[t.Rollout]]] = []
        for _, group in groups:
            claimed: list[list[t.Rollout]] = []
            exhausted = False
            for stream, room in group:
                got = [] if exhausted else list((await dequeue(stream.dequeue_request(room))).rollouts)
                exhausted = exhausted or len(got) < room
                claimed.append(got)
            results.append(claimed)
        return results

    def _release(self, rollouts: list[t.Rollout]) -> None:
        release = getattr(self.backend, "release_claims", None)
        if release is None:
            return  # the attempts stay as claimed until their timeouts apply
        task = asyncio.ensure_future(release(rollouts))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)
