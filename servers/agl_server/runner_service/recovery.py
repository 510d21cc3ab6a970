"""After agl-server restarts: giving up the attempts of Work-stream workers that never came back.

A worker whose Work stream was open when the server stopped (or crashed) is still recorded as
connected. It normally reconnects within seconds and says which attempts it still runs. One that
does not return within the grace period is gone: its active attempts are marked UNRESPONSIVE
(the retry policy applies) and its record UNKNOWN, so nothing waits forever on a dead worker
even when no ``unresponsive_seconds`` is configured. Workers that poll DequeueRollout instead
are left alone: only their polls and spans tell whether they live, and the store's own
timeouts watch those.
"""

from __future__ import annotations

import asyncio
import logging

from agl_core.errors import FailedPreconditionError, NotFoundError
from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_core.store import validation
from agl_core.store.backend import StoreBackend
from agl_core.types.values import from_struct, to_struct

logger = logging.getLogger("agl_server")

_ACTIVE_ROLLOUT = (t.ROLLOUT_STATUS_PREPARING, t.ROLLOUT_STATUS_RUNNING)
_ACTIVE_ATTEMPT = (t.ATTEMPT_STATUS_PREPARING, t.ATTEMPT_STATUS_RUNNING)


async def recover_orphans(backend: StoreBackend, *, connected: set[str]) -> int:
    """Give up the attempts of workers recorded as connected that are not in ``connected`` (the
    workers with an open stream now). Returns how many attempts were given up."""
    orphans: dict[str, t.Worker] = {}
    offset = 0
    while True:
        page = await backend.query_workers(s.QueryWorkersRequest(limit=validation.MAX_PAGE, offset=offset))
        for worker in page.workers:
            stats = from_struct(worker.heartbeat_stats)
            if (
                stats.get("work_stream") is True
                and stats.get("connected") is True
                and worker.worker_id not in connected
            ):
                orphans[worker.worker_id] = worker
        offset += len(page.workers)
        if not page.workers or offset >= page.total:
            break
    if not orphans:
        return 0
    given_up = 0
    offset = 0
    while True:
        request = s.QueryRolloutsRequest(status_in=_ACTIVE_ROLLOUT, limit=validation.MAX_PAGE, offset=offset)
        page = await backend.query_rollouts(request)
        for rollout in page.rollouts:
            attempt = rollout.attempt
            if attempt.worker_id in orphans and attempt.status in _ACTIVE_ATTEMPT:
                try:
                    await backend.update_attempt(
                        s.UpdateAttemptRequest(
                            rollout_id=rollout.rollout_id,
                            attempt_id=attempt.attempt_id,
                            status=t.ATTEMPT_STATUS_UNRESPONSIVE,
                        )
                    )
                    given_up += 1
                except (FailedPreconditionError, NotFoundError):
                    pass  # it finished meanwhile
        # Given-up rollouts leave the active statuses, so the next page starts where they were.
        offset += sum(1 for r in page.rollouts if r.attempt.worker_id not in orphans)
        if len(page.rollouts) < validation.MAX_PAGE:
            break
        await asyncio.sleep(0)
    for worker in orphans.values():
        stats = {**from_struct(worker.heartbeat_stats), "connected": False}
        request = s.UpdateWorkerRequest(worker_id=worker.worker_id, status=t.WORKER_STATUS_UNKNOWN)
        request.heartbeat_stats.CopyFrom(to_struct(stats, "heartbeat_stats"))
        await backend.update_worker(request)
    logger.info(
        "%d worker(s) did not reconnect after the restart (%s); %d attempt(s) they held marked unresponsive",
        len(orphans),
        ", ".join(sorted(orphans)),
        given_up,
    )
    return given_up
