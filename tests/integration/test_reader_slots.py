"""LMDB reader slots are given back when a read ends, however the read ended.

py-lmdb holds a read transaction's reader slot for as long as the Python object lives; a read that
fails inside its block leaves the object in its traceback's frame, and an exception kept in a
reference cycle kept the slot until a garbage collection. Workers polling GetResources of a
namespace without resources took the environment's 1,024 slots within seconds, and from then on
every read of agl-server failed with MDB_READERS_FULL.
"""

from __future__ import annotations

import os
from pathlib import Path

import lmdb

from agl_core.client import GrpcStore
from agl_core.errors import NotFoundError
from agl_core.proto import store_pb2 as s
from agl_core.store import LmdbStore
from agl_server.process import ServerProcess

# More failed reads than the environment has reader slots (schema.py: max_readers=1024).
FAILED_READS = 1_200


def slots_held(readers: str, pid: int) -> int:
    """Reader slots that process ``pid`` holds in LMDB's lock table (``Environment.readers()``)."""
    return sum(1 for row in readers.splitlines()[1:] if row.split() and row.split()[0] == str(pid))


def server_readers(data_dir: Path) -> str:
    """The lock table of agl-server's environment, read through a handle of this process."""
    env = lmdb.open(str(data_dir), readonly=True, lock=True, max_dbs=64)
    try:
        return str(env.readers())
    finally:
        env.close()


async def test_failed_reads_kept_alive_give_their_slots_back(data_dir: Path) -> None:
    """In process: each failed read's exception (with the frame that named the transaction) is
    kept alive, as a reference cycle would keep it; the slots are free all the same."""
    store = LmdbStore(data_dir)
    kept: list[NotFoundError] = []
    try:
        for _ in range(FAILED_READS):
            try:
                await store.backend.get_resources(s.GetResourcesRequest())
            except NotFoundError as exc:
                kept.append(exc)
        assert len(kept) == FAILED_READS
        assert slots_held(store.backend.env.readers(), os.getpid()) <= 4
        # Reads still work, on the event loop and on the read pool.
        rollout = await store.enqueue_rollout("after")
        assert (await store.get_rollout(rollout.rollout_id)).rollout_id == rollout.rollout_id
        assert (await store.query_workers()).total == 0
    finally:
        await store.close()


async def test_server_survives_more_failed_reads_than_reader_slots(server: ServerProcess, data_dir: Path) -> None:
    store = GrpcStore(server.address)
    try:
        for _ in range(FAILED_READS):
            assert await store.get_latest_resources() is None  # NOT_FOUND: no resources added
        assert server.process is not None
        assert slots_held(server_readers(data_dir), server.process.pid) <= 16
        rollout = await store.enqueue_rollout("after")
        assert (await store.get_rollout(rollout.rollout_id)).rollout_id == rollout.rollout_id
        assert [r.rollout_id for r in await store.query_rollouts()] == [rollout.rollout_id]
    finally:
        await store.close()
