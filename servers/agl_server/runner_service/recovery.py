"""After agl-server restarts: giving up the attempts of Work-stream workers that never came back,
and the attempts a worker that did come back no longer holds.

A worker whose Work stream was open when the server stopped (or crashed) normally reconnects
within seconds and says which attempts it still runs. One that does not return within the grace
period is gone: every active attempt held by a Work-stream worker without an open stream now is
marked UNRESPONSIVE (the retry policy applies), and a record still saying "connected" becomes
UNKNOWN, so nothing waits forever on a dead worker even when no ``unresponsive_seconds`` is
configured. Workers that poll DequeueRollout instead are left alone: only their polls and spans
tell whether they live, and the store's own timeouts watch those.

The attempts, not the worker records, decide what is given up. A session that ends writes the
worker as disconnected first and gives its attempts up after (see ``session.py``); when the
runner and then the server are killed between those two writes, the record says
"disconnected" while the attempt is still RUNNING. Looking only at workers recorded as
connected left such an attempt RUNNING forever; so did a graceful shutdown (which keeps the
attempts for a worker that is expected back) followed by a worker that never returned.

A worker that came back says in its hello which attempts it still runs; an attempt of an earlier
server life that the store gives to it and that it did not list is not running anywhere. The
common case is a claim the server committed just before it died, whose assignment never left it
(an attempt claimed RUNNING for a worker that starts on assignment looks running to everyone): one
never touched since (no span, no heartbeat) goes back to the queue as if never claimed; one
touched is marked UNRESPONSIVE. Final reports a worker resends after its hello arrive long before
the grace period ends, so a finished attempt is not taken for a lost one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping

from agl_core.errors import FailedPreconditionError, NotFoundError
from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_core.store import validation
from agl_core.store.backend import StoreBackend
from agl_core.types.values import from_struct, to_struct

logger = logging.getLogger("agl_server")

_ACTIVE_ROLLOUT = (t.ROLLOUT_STATUS_PREPARING, t.ROLLOUT_STATUS_RUNNING)
_ACTIVE_ATTEMPT = (t.ATTEMPT_STATUS_PREPARING, t.ATTEMPT_STATUS_RUNNING)


async def recover_orphans(
    backend: StoreBackend,
    *,
    connected: set[str],
    holding: Mapping[str, Collection[str]] | None = None,
    before_ns: int = 0,
) -> int:
    """Give up the active attempts of Work-stream workers that are not in ``connected`` (the
    workers with an open stream now), and those of connected workers that started before
    ``before_ns`` (an earlier server life) and are not in ``holding[worker]`` (what the worker's
    stream holds). Returns how many attempts were given up or put back in the queue."""
    holding = holding or {}
    absent: dict[str, t.Worker] = {}
    offset = 0
    while True:
        page = await backend.query_workers(
            s.QueryWorkersRequest(limit=validation.MAX_PAGE, offset=offset, all_namespaces=True)
        )
        for worker in page.workers:
            if worker.worker_id not in connected and from_struct(worker.heartbeat_stats).get("work_stream") is True:
                absent[worker.worker_id] = worker
        offset += len(page.workers)
        if not page.workers or offset >= page.total:
            break
    if not absent and not holding:
        return 0
    # Records that still say "connected" are of workers that vanished with the server. The records
    # first (as when a stream ends): whoever sees the attempts given up also sees the workers gone.
    vanished = [w for w in absent.values() if from_struct(w.heartbeat_stats).get("connected") is True]
    for worker in vanished:
        stats = {**from_struct(worker.heartbeat_stats), "connected": False}
        request = s.UpdateWorkerRequest(worker_id=worker.worker_id, status=t.WORKER_STATUS_UNKNOWN)
        request.heartbeat_stats.CopyFrom(to_struct(stats, "heartbeat_stats"))
        await backend.update_worker(request)
    given_up = lost = 0
    holders: set[str] = set()
    offset = 0
    while True:
        request = s.QueryRolloutsRequest(
            status_in=_ACTIVE_ROLLOUT, limit=validation.MAX_PAGE, offset=offset, all_namespaces=True
        )
        page = await backend.query_rollouts(request)
        kept = 0
        for rollout in page.rollouts:
            attempt = rollout.attempt
            if attempt.status in _ACTIVE_ATTEMPT and _unlisted(attempt, holding, before_ns):
                if await _put_back_or_give_up(backend, rollout):
                    lost += 1
                    holders.add(attempt.worker_id)
                else:
                    kept += 1
                continue
            if attempt.worker_id not in absent or attempt.status not in _ACTIVE_ATTEMPT:
                kept += 1
                continue
            try:
                await backend.update_attempt(
                    s.UpdateAttemptRequest(
                        rollout_id=rollout.rollout_id,
                        attempt_id=attempt.attempt_id,
                        status=t.ATTEMPT_STATUS_UNRESPONSIVE,
                    )
                )
                given_up += 1
                holders.add(attempt.worker_id)
            except (FailedPreconditionError, NotFoundError):
                pass  # it finished meanwhile
        # Given-up rollouts leave the active statuses, so the next page starts where they were.
        offset += kept
        if len(page.rollouts) < validation.MAX_PAGE:
            break
        await asyncio.sleep(0)
    if lost:
        logger.info(
            "%d attempt(s) of an earlier server life were held by reconnected workers that no longer run them "
            "(never delivered, most likely); put back in the queue if never touched, else marked unresponsive",
            lost,
        )
    if vanished or given_up:
        logger.info(
            "%d worker(s) did not reconnect after the restart (%s); %d attempt(s) they held marked unresponsive",
            len(holders | {w.worker_id for w in vanished}),
            ", ".join(sorted(holders | {w.worker_id for w in vanished})),
            given_up,
        )
    return given_up + lost


def _unlisted(attempt: t.Attempt, holding: Mapping[str, Collection[str]], before_ns: int) -> bool:
    held = holding.get(attempt.worker_id)
    return held is not None and attempt.attempt_id not in held and attempt.start_time.ToNanoseconds() < before_ns


async def _put_back_or_give_up(backend: StoreBackend, rollout: t.Rollout) -> bool:
    """An attempt its worker does not run: back to the queue if never touched (the store checks
    that, in the same write), else UNRESPONSIVE. False if it changed meanwhile and was left."""
    release = getattr(backend, "release_claims", None)
    if release is not None and not rollout.attempt.HasField("last_heartbeat_time"):
        await release([rollout])
        after = (await backend.get_rollout(s.GetRolloutRequest(rollout_id=rollout.rollout_id))).rollout
        if after.status not in _ACTIVE_ROLLOUT or after.attempt.attempt_id != rollout.attempt.attempt_id:
            return True  # put back (and maybe claimed again since, as a new attempt)
    try:
        await backend.update_attempt(
            s.UpdateAttemptRequest(
                rollout_id=rollout.rollout_id,
                attempt_id=rollout.attempt.attempt_id,
                status=t.ATTEMPT_STATUS_UNRESPONSIVE,
            )
        )
        return True
    except (FailedPreconditionError, NotFoundError):
        return False  # it finished meanwhile
