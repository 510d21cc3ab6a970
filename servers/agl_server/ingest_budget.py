"""One budget of memory for span batches being ingested, shared by every IngestSpans stream.

A batch is charged from the moment it is read off its stream until the store has written it (then
its bytes are freed; only the small acknowledgement waits for the client). A stream whose batch
does not fit waits before reading more, so HTTP/2 flow control holds its client back. Since the
charge ends with the write and not with the client reading its acks, a stream that never reads
them holds nothing of the budget: it stops being read once its window of unacknowledged batches
is full (``MAX_INFLIGHT_BATCHES`` in ``span_streams``) and cannot starve the other streams.
"""

from __future__ import annotations

import asyncio

DEFAULT_BUDGET_BYTES = 256 << 20


class IngestBudget:
    """Bytes of span batches read and not yet written, across all streams, at most ``limit``.

    A batch larger than the whole budget is let through alone (when nothing else is held), so the
    largest accepted message can never wait forever.
    """

    def __init__(self, limit: int = DEFAULT_BUDGET_BYTES) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0
        # Times a stream had to wait for room: shows the budget was reached.
        self.waits = 0
        self._freed = asyncio.Event()
        self._waiting = 0  # streams waiting for room: only then does a release wake anyone

    def try_acquire(self, size: int) -> bool:
        """Hold ``size`` bytes if they fit now (no coroutine: the common case of every batch)."""
        if not self._fits(size):
            return False
        self.held += size
        self.peak = max(self.peak, self.held)
        return True

    async def acquire(self, size: int) -> None:
        """Wait until ``size`` bytes fit, then hold them (event-loop only, so no lock is needed)."""
        if not self._fits(size):
            self.waits += 1
            self._waiting += 1
            try:
                while not self._fits(size):
                    await self._freed.wait()
            finally:
                self._waiting -= 1
        self.held += size
        self.peak = max(self.peak, self.held)

    def release(self, size: int) -> None:
        """Give ``size`` bytes back; synchronous, so it is safe in ``finally`` of a cancelled task."""
        self.held -= size
        if self._waiting:
            freed, self._freed = self._freed, asyncio.Event()
            freed.set()

    def _fits(self, size: int) -> bool:
        return self.held == 0 or self.held + size <= self.limit

    def gauges(self) -> dict[str, int]:
        """What agl-server reports (as trailing metadata of GetStats)."""
        return {
            "agl-ingest-budget-bytes": self.limit,
            "agl-ingest-held-bytes": self.held,
            "agl-ingest-peak-bytes": self.peak,
            "agl-ingest-budget-waits": self.waits,
        }
