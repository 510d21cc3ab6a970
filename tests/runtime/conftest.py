"""Fixtures of the runtime tests that speak to a real agl-server: a store client, and raw Work
streams closed after the test (before the server stops)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.raw_worker import RawWorker

from agl_core.client import GrpcStore
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
