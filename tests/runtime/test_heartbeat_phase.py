"""Workers started together do not heartbeat together: each work source (the Work stream's and the
polling one) sends its first heartbeat at a random point of its first interval (every heartbeat is
a store write, and 1,000 aligned ones held dispatch back for tens of milliseconds in
bench/fleet_bench.py)."""

from __future__ import annotations

import asyncio

import pytest
from support.waits import until

from agl_core.client import GrpcStore
from agl_core.runner import DequeueSource, WorkStreamSource
from agl_server.process import ServerProcess

WORKERS = 16
INTERVAL = 1.0


async def first_heartbeat_after_welcome(client: GrpcStore, worker_id: str, welcomed: float) -> float:
    """Seconds from the worker record's write at welcome to its next write (the first heartbeat):
    both are the store's own timestamps, so how often this polls does not matter."""
    offset: list[float] = []

    async def beaten() -> bool:
        stamp = (await client.get_worker(worker_id)).last_heartbeat_time
        if stamp is not None and stamp > welcomed:
            offset.append(stamp - welcomed)
        return bool(offset)

    await until(beaten, timeout=10 * INTERVAL, what=f"a heartbeat of worker {worker_id}")
    return offset[0]


@pytest.mark.parametrize("kind", ["work stream", "polling"])
async def test_workers_started_together_spread_their_heartbeats(
    server: ServerProcess, client: GrpcStore, kind: str
) -> None:
    sources: list[WorkStreamSource | DequeueSource] = [
        WorkStreamSource(server.address, worker_id=f"w-phase-{i}", heartbeat_interval=INTERVAL)
        if kind == "work stream"
        else DequeueSource(client, worker_id=f"w-phase-{i}", heartbeat_interval=INTERVAL)
        for i in range(WORKERS)
    ]
    try:
        await asyncio.gather(*(source.start() for source in sources))
        welcomed: dict[str, float] = {}
        for source in sources:
            stamp = (await client.get_worker(source.worker_id)).last_heartbeat_time
            assert stamp is not None
            welcomed[source.worker_id] = stamp
        offsets = await asyncio.gather(
            *(first_heartbeat_after_welcome(client, worker_id, at) for worker_id, at in welcomed.items())
        )
    finally:
        await asyncio.gather(*(source.close() for source in sources))
    # Aligned, every offset would be one interval; spread uniformly over it, 16 offsets span less
    # than 0.4 of it with a probability of about 1e-5.
    assert max(offsets) - min(offsets) >= 0.4 * INTERVAL, sorted(offsets)
    # Never later than without the spread: within the first interval (plus a loaded machine's delay).
    assert max(offsets) <= INTERVAL + 0.5, sorted(offsets)
