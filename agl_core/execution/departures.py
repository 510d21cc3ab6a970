"""Waiting until agl-server has seen killed runners go, before it is stopped.

A strategy that kills a runner (it did not drain in time) and then stops agl-server races the
server: the runner's Work stream breaks when its process dies, but the server notices that on its
own loop, some milliseconds later. If the shutdown comes first, the server keeps the runner's
attempts running (a shutdown keeps them for workers that reconnect after a restart) and they are
given up only when the store is next opened. Waiting for the server to mark the killed workers
gone makes the end of a run say what happened: the attempts they held are ``unresponsive``.

The server writes the worker record (status ``unknown``) after it has decided to give the
attempts up and before it does, and its shutdown waits for that to finish; so once every record
says ``unknown`` (or the worker never registered), stopping the server loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection

from agl_core.client import GrpcStore
from agl_core.types import WorkerStatus

logger = logging.getLogger(__name__)

CONNECTED = (WorkerStatus.IDLE, WorkerStatus.BUSY)


async def wait_workers_gone(
    store: GrpcStore,
    worker_ids: Collection[str],
    timeout: float,
    poll_interval: float = 0.05,
    *,
    id_prefix: str | None = None,
) -> list[str]:
    """Until none of ``worker_ids`` (nor, with ``id_prefix``, any worker whose id starts with it)
    is connected to the server, or ``timeout``; returns the ones still connected (empty when all
    are gone)."""
    ids = sorted(set(worker_ids))
    deadline = time.monotonic() + timeout
    while True:
        connected: set[str] = set()
        # Counted from the totals: a page may not hold every match (past the page, still waited for).
        pending = 0
        if ids:
            page = await store.query_workers(worker_id_in=ids, status_in=CONNECTED, all_namespaces=True)
            connected.update(w.worker_id for w in page.items)
            pending += page.total
        if id_prefix:
            page = await store.query_workers(worker_id_contains=id_prefix, status_in=CONNECTED, all_namespaces=True)
            matched = [w.worker_id for w in page.items if w.worker_id.startswith(id_prefix)]
            connected.update(matched)
            pending += len(matched) + page.total - len(page.items)
        if not pending or time.monotonic() >= deadline:
            return sorted(connected)
        await asyncio.sleep(poll_interval)


def wait_killed_runners_gone(
    address: str,
    worker_ids: Collection[str],
    *,
    token: str | None = None,
    tls: bool = False,
    root_certificates: bytes | None = None,
    timeout: float = 10.0,
    id_prefix: str | None = None,
) -> None:
    """:func:`wait_workers_gone` from synchronous shutdown code; a server that does not answer
    (it died, or is unreachable) is logged, never raised: the shutdown goes on."""
    if not worker_ids and not id_prefix:
        return

    async def wait() -> list[str]:
        store = GrpcStore(address, token=token, tls=tls, root_certificates=root_certificates)
        try:
            waiting = wait_workers_gone(store, worker_ids, timeout, id_prefix=id_prefix)
            return await asyncio.wait_for(waiting, timeout + 5.0)
        finally:
            await store.close()

    started = time.monotonic()
    try:
        left = asyncio.run(wait())
    except Exception as exc:  # shutdown must go on whatever the server says
        logger.warning("could not ask agl-server whether the killed runners are gone: %s", exc)
        return
    if left:
        logger.warning(
            "agl-server still counts %d killed runner(s) as connected after %gs (%s); the attempts "
            "they held are given up when the store is next opened",
            len(left),
            timeout,
            ", ".join(left),
        )
    else:
        logger.debug("agl-server saw the killed runners go in %.2fs", time.monotonic() - started)
