"""Worker-record writes of all Work streams, coalesced. Each heartbeat (and each stream's welcome
and end) rewrites its worker's record, and a fleet whose workers started together sends them
together. Written one store operation each, 1,000 of them queued in the store's writer ahead of
the dispatcher's claims: with 1,000 streams beating in step, dispatch p99 was 9-28 ms, against 6.5-7.7
ms with those writes left out (``bench/fleet_bench.py``, welcome scenario). Here the updates asked
for while one write is in flight wait and go together in the next, as one store operation
(``update_workers``, through :class:`~.coalesce.Coalescer`): 7-14 us per update instead of 120 us
one by one, and p99 5.6-7.4 ms.

Each caller still returns only once its own update is durable, and updates are applied in the order
they were asked for (one write in flight at a time), so a stream's final "disconnected" write lands
after its heartbeats, as before. A backend without ``update_workers`` (a plugin's) gets one
``update_worker`` call per update, as before.
"""

from __future__ import annotations

from agl_core.errors import InvalidArgumentError
from agl_core.proto import store_pb2 as s
from agl_core.store.backend import StoreBackend
from agl_server.runner_service.coalesce import HEARTBEAT_LINGER, Coalescer, outcomes

# One store operation holds at most this many updates, so it runs in well under a millisecond next
# to the claims that share its commit. At 256, p99 in the same scenario was 7.4-13.6 ms.
MAX_PER_WRITE = 32


class WorkerWrites(Coalescer[s.UpdateWorkerRequest]):
    """Coalesces ``UpdateWorker`` requests into ``update_workers`` calls of the backend. ``writes``:
    the store operations made, ``items`` the updates written (/metrics:
    agl_worker_record_writes_total, agl_worker_record_updates_total)."""

    def __init__(self, backend: StoreBackend) -> None:
        self._backend = backend
        many = self._write if hasattr(backend, "update_workers") else None
        super().__init__(many, backend.update_worker, MAX_PER_WRITE, HEARTBEAT_LINGER)

    async def update(self, request: s.UpdateWorkerRequest, *, urgent: bool = True) -> None:
        """Write ``request``; returns once it is durable (or raises what the store raised for it).
        ``urgent=False`` (a heartbeat's): it may wait a moment for others (see coalesce.py)."""
        await self.submit(request, urgent=urgent)

    async def _write(self, requests: list[s.UpdateWorkerRequest]) -> list[BaseException | None]:
        """What became of each request: None when written."""
        try:
            await self._backend.update_workers(requests)  # type: ignore[attr-defined]
        except InvalidArgumentError:
            # One of them is bad (the backend checks all before writing any): one by one, in order,
            # so that only the bad ones fail.
            return await outcomes(*(self._backend.update_worker(request) for request in requests))
        return [None] * len(requests)
