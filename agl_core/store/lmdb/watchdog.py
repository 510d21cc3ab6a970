"""Applies timeouts and unresponsiveness on time.

The original scanned for unhealthy rollouts only when some other store call happened to run.
Here every active attempt with a deadline sits in a heap; one timer on the event loop fires at
the earliest deadline and hands the due attempts to a write operation that re-checks them
against the stored state (a heartbeat may have moved the deadline) and applies the rules. The
heap holds only active attempts, so its size is bounded by the work in flight.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Group attempts whose deadlines fall within this window into one write.
_SLACK = 0.005


class Watchdog:
    def __init__(self, loop: asyncio.AbstractEventLoop, expire: Callable[[list[tuple[int, int]]], None]) -> None:
        """:param expire: called on the loop with the (rollout num, attempt seq) pairs that are due."""
        self._loop = loop
        self._expire = expire
        self._heap: list[tuple[float, int, int]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._closed = False

    def __len__(self) -> int:
        return len(self._heap)

    def arm(self, deadline: float, num: int, seq: int) -> None:
        if self._closed:
            return
        heapq.heappush(self._heap, (deadline, num, seq))
        if deadline < self._timer_at:
            self._schedule(deadline)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._heap.clear()

    def _schedule(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_later(max(0.0, deadline - time.time()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        now = time.time()
        due: dict[tuple[int, int], None] = {}
        while self._heap and self._heap[0][0] <= now + _SLACK:
            _, num, seq = heapq.heappop(self._heap)
            due[(num, seq)] = None
        if due:
            try:
                self._expire(list(due))
            except Exception:
                # Keep the timer going for the attempts still in the heap whatever happened here.
                logger.exception("watchdog: handing %d due attempts to the writer failed", len(due))
        if self._heap:
            self._schedule(self._heap[0][0])
