"""Waiting for runner processes to say hello, in tests."""

from __future__ import annotations

import asyncio

from agl_core.client import GrpcStore


async def until_connected(address: str, worker_ids: set[str]) -> None:
    """Return once every worker in ``worker_ids`` has an open Work stream to agl-server at
    ``address``. The store has no push notification for worker records, so they are read again
    until then; callers bound this with a deadline (``asyncio.wait_for``)."""
    store = GrpcStore(address)
    try:
        while True:
            connected = {
                w.worker_id
                for w in await store.query_workers(all_namespaces=True)
                if w.heartbeat_stats.get("connected")
            }
            if worker_ids <= connected:
                return
            await asyncio.sleep(0.05)
    finally:
        await store.close()
