"""Hands queued rollouts to the Work streams that have room, for all streams at once.

Each stream used to claim work for itself: a rollout entering the queue woke every idle stream
and each sent its own claim to the store's single writer, so with 1,000 idle workers one rollout
cost 1,000 claims (999 of them empty) and the time to hand it over grew with the number of
streams. Here one task claims for every waiting stream in one write operation per round
(:meth:`dequeue_for_workers` of the LMDB backend). Streams with the same route (namespace, queues,
selector) are served in the order they began to wait, a stream that got work and still has room
goes to the back, and a route is passed over as soon as its queues hold nothing it matches. What a
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
        self._has_match = getattr(backend, "has_queued_match", None)
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

    def _claims(self) -> list[tuple[Claimant, int]]:
        claims: list[tuple[Claimant, int]] = []
        total = 0
        for route, streams in list(self._waiting.items()):
            if self._has_match is not None and not self._has_match(route):
                continue
            for stream in list(streams):
                room = min(stream.room(), validation.MAX_PAGE)
                if room <= 0:
                    self.forget(stream)
                    continue
                claims.append((stream, room))
                total += room
                if total >= MAX_ROUND:
                    return claims
        return claims

    async def _round(self) -> bool:
        """Claim once for the waiting streams whose routes match queued work; whether any got some."""
        claims = self._claims()
        if not claims:
            return False
        self.rounds += 1
        results = await self._claim(claims)
        progressed = False
        for (stream, _), rollouts in zip(claims, results, strict=True):
            if not rollouts:
                continue
            progressed = True
            if not stream.deliver(rollouts):
                self._release(rollouts)  # the stream ended while its claim committed
            self.forget(stream)
            if stream.room() > 0:
                self._waiting.setdefault(stream.route, {})[stream] = None  # to the back of its route
        return progressed

    async def _claim(self, claims: list[tuple[Claimant, int]]) -> list[list[t.Rollout]]:
        if self._claim_many is not None:
            result: list[list[t.Rollout]] = await self._claim_many(
                [(stream.worker_id, room, stream.route) for stream, room in claims]
            )
            return result
        # Another backend: stream by stream, without waiting.
        dequeue = self.backend.dequeue_rollout
        return [list((await dequeue(stream.dequeue_request(room))).rollouts) for stream, room in claims]

    def _release(self, rollouts: list[t.Rollout]) -> None:
        release = getattr(self.backend, "release_claims", None)
        if release is None:
            return  # the attempts stay PREPARING until their timeouts apply
        task = asyncio.ensure_future(release(rollouts))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)
