"""The heartbeats of attempts, coalesced across Work streams. At each heartbeat a worker's stream
refreshes the last heartbeat time of every attempt the worker holds (the watchdog gives up an
attempt whose heartbeats stop), so a fleet of 256 workers holding 8 attempts each, beating every
second, asks for 2,048 attempt writes a second. One store operation each, they cost the server
about as much CPU as the rollouts themselves (``bench/fleet_bench.py --scenarios held``). Here the
beats asked for while one write is in flight go together in the next, as one store operation
(``heartbeat_attempts``, through :class:`~.coalesce.Coalescer`), each beat still succeeding or
failing alone. A backend without ``heartbeat_attempts`` (a plugin's) gets one ``update_attempt``
call per beat, as before.
"""

from __future__ import annotations

from agl_core.proto import store_pb2 as s
from agl_core.store.backend import StoreBackend
from agl_server.runner_service.coalesce import HEARTBEAT_LINGER, Coalescer

# Beats per store operation: each costs the writer a lookup of its rollout and attempt and one put,
# so that many keep the operation well under a millisecond next to the claims sharing its commit.
MAX_PER_WRITE = 64

Beat = tuple[str, str, int]  # rollout id, attempt id, time (ns since the epoch)


class AttemptHeartbeats(Coalescer[Beat]):
    """Coalesces attempts' heartbeats into ``heartbeat_attempts`` calls of the backend. ``writes``:
    the store operations made, ``items`` the beats written (/metrics:
    agl_attempt_heartbeat_writes_total, agl_attempt_heartbeats_total)."""

    def __init__(self, backend: StoreBackend) -> None:
        self._backend = backend
        many = getattr(backend, "heartbeat_attempts", None)
        super().__init__(many, self._update_attempt, MAX_PER_WRITE, HEARTBEAT_LINGER)

    async def beat(self, rollout_id: str, attempt_id: str, time_ns: int) -> None:
        """Set the attempt's last heartbeat time; returns once durable (it may wait a moment for
        other beats: see coalesce.py), or raises what the store raised for it (NotFoundError when
        the attempt is gone)."""
        await self.submit((rollout_id, attempt_id, time_ns), urgent=False)

    async def _update_attempt(self, beat: Beat) -> None:
        """One beat through ``update_attempt``, for a backend without ``heartbeat_attempts``."""
        rollout_id, attempt_id, time_ns = beat
        request = s.UpdateAttemptRequest(rollout_id=rollout_id, attempt_id=attempt_id)
        request.last_heartbeat_time.FromNanoseconds(time_ns)
        await self._backend.update_attempt(request)
