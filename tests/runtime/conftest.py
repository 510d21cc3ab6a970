"""Fixtures of the runtime tests that speak to a real agl-server: a store client, and raw Work
streams closed after the test (before the server stops)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from runner_runs import Setup
from support.raw_worker import RawWorker

from agl_core.client import GrpcStore
from agl_core.runner import DequeueSource, WorkStreamSource
from agl_core.store import LmdbStore
from agl_server.process import ServerProcess


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[GrpcStore]:
    store = GrpcStore(server.address)
    yield store
    await store.close()


@pytest.fixture
async def workers(server: ServerProcess) -> AsyncIterator[list[RawWorker]]:
    """Raw Work streams the test opens (it appends them); each is closed after the test."""
    opened: list[RawWorker] = []
    yield opened
    for worker in opened:
        await worker.close()


@pytest.fixture(params=["embedded", "server"])
async def setup(request: pytest.FixtureRequest, data_dir: Path) -> AsyncIterator[Setup]:
    """A store and the work source a runner uses with it: embedded LMDB, or agl-server and the Work stream."""
    if request.param == "embedded":
        store = LmdbStore(data_dir)
        yield Setup(
            store,
            lambda worker_id="w", capacity=1: DequeueSource(store, worker_id=worker_id, capacity=capacity),
        )
        await store.close()
    else:
        server = ServerProcess(data_dir, log_path=data_dir.parent / "server.log").start()
        store = GrpcStore(server.address)
        yield Setup(
            store,
            lambda worker_id="w", capacity=1: WorkStreamSource(server.address, worker_id=worker_id, capacity=capacity),
            server,
        )
        await store.close()
        server.stop()
