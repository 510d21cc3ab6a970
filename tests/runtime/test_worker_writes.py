"""agl-server's coalesced worker-record writes (``runner_service/worker_writes.py``) over a real
LMDB store: the heartbeats of many streams reach the store as a few operations, in order, each
caller answered for its own update; and over a backend without ``update_workers``, one call each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agl_core.client.backend import GrpcBackend
from agl_core.client.channel import ChannelConfig
from agl_core.errors import InvalidArgumentError
from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_core.store import LmdbStore
from agl_core.types.values import from_struct, to_struct
from agl_server.process import ServerProcess
from agl_server.runner_service.worker_writes import MAX_PER_WRITE, WorkerWrites


def update(worker_id: str, **stats: object) -> s.UpdateWorkerRequest:
    return s.UpdateWorkerRequest(worker_id=worker_id, heartbeat_stats=to_struct(stats, "heartbeat_stats"))


@pytest.fixture
async def store(data_dir: Path) -> AsyncIterator[LmdbStore]:
    store = LmdbStore(data_dir)
    yield store
    await store.close()


async def stats_of(store: LmdbStore, worker_id: str) -> dict[str, object]:
    worker = (await store.backend.get_worker(s.GetWorkerRequest(worker_id=worker_id))).worker
    return from_struct(worker.heartbeat_stats)


async def test_updates_of_many_workers_go_to_the_store_together(store: LmdbStore) -> None:
    writes = WorkerWrites(store.backend)
    ops_before = store.backend.writer_counts[1]
    await asyncio.gather(*(writes.update(update(f"w-{i}", n=i)) for i in range(200)))
    for i in (0, 57, 199):
        assert (await stats_of(store, f"w-{i}"))["n"] == i
    # One at a time, 200 operations; coalesced, the first alone and the rest in chunks.
    assert writes.items == 200
    assert writes.writes <= 1 + -(-199 // MAX_PER_WRITE), writes.writes
    assert store.backend.writer_counts[1] - ops_before == writes.writes


async def test_updates_of_one_worker_land_in_the_order_asked(store: LmdbStore) -> None:
    writes = WorkerWrites(store.backend)
    await asyncio.gather(*(writes.update(update("w-order", seq=i)) for i in range(100)))
    assert (await stats_of(store, "w-order"))["seq"] == 99
    await writes.update(
        s.UpdateWorkerRequest(
            worker_id="w-order", heartbeat_stats=to_struct({"connected": False}), status=t.WORKER_STATUS_UNKNOWN
        )
    )
    worker = (await store.backend.get_worker(s.GetWorkerRequest(worker_id="w-order"))).worker
    assert worker.status == t.WORKER_STATUS_UNKNOWN and from_struct(worker.heartbeat_stats) == {"connected": False}


async def test_a_bad_update_fails_alone(store: LmdbStore) -> None:
    # The backend checks a whole batch before writing any of it...
    with pytest.raises(InvalidArgumentError, match="worker_id is required"):
        await store.backend.update_workers([update("w-never"), update("")])
    with pytest.raises(Exception, match="not found"):
        await store.backend.get_worker(s.GetWorkerRequest(worker_id="w-never"))
    # ...and the coalescer then writes that batch one by one, so only the bad one fails.
    writes = WorkerWrites(store.backend)
    bad_status = s.UpdateWorkerRequest(worker_id="w-bad", status=99)
    results = await asyncio.gather(
        writes.update(update("w-good-1", ok=1)),
        writes.update(bad_status),
        writes.update(update("w-good-2", ok=2)),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], InvalidArgumentError) and "not a worker status" in results[1].message
    assert (await stats_of(store, "w-good-1"))["ok"] == 1 and (await stats_of(store, "w-good-2"))["ok"] == 2


async def test_a_backend_without_update_workers_gets_one_call_per_update(server: ServerProcess) -> None:
    backend = GrpcBackend(ChannelConfig(address=server.address))
    try:
        assert not hasattr(backend, "update_workers")
        writes = WorkerWrites(backend)
        await asyncio.gather(*(writes.update(update(f"w-remote-{i}", n=i)) for i in range(5)))
        assert writes.writes == writes.items == 5  # nothing coalesced: each its own UpdateWorker call
        worker = (await backend.get_worker(s.GetWorkerRequest(worker_id="w-remote-3"))).worker
        assert from_struct(worker.heartbeat_stats) == {"n": 3}
    finally:
        await backend.close()
