"""Shared fixtures: real agl-server processes on free loopback ports, real LMDB in temp dirs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support.openai_server import OpenAIServer

from agl_core.client import GrpcStore
from agl_core.store import LightningStore, LmdbStore
from agl_server.process import ServerProcess


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "agl-data"


@pytest.fixture
def server(data_dir: Path) -> Iterator[ServerProcess]:
    """A real agl-server process on a free port, over a fresh data directory."""
    process = ServerProcess(data_dir, log_path=data_dir.parent / "server.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(params=["lmdb", "grpc"])
async def store(request: pytest.FixtureRequest, data_dir: Path) -> AsyncIterator[LightningStore]:
    """The same store API two ways: LmdbStore in-process, and GrpcStore against agl-server."""
    if request.param == "lmdb":
        embedded = LmdbStore(data_dir)
        try:
            yield embedded
        finally:
            await embedded.close()
    else:
        process = ServerProcess(data_dir, log_path=data_dir.parent / "server.log").start()
        client = GrpcStore(process.address)
        try:
            yield client
        finally:
            await client.close()
            process.stop()


@pytest.fixture
async def grpc_store(server: ServerProcess) -> AsyncIterator[GrpcStore]:
    """A GrpcStore client of the ``server`` fixture's agl-server."""
    store = GrpcStore(server.address)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A deterministic OpenAI-compatible server returning token ids (see tests/support/openai_server.py)."""
    with OpenAIServer() as llm:
        yield llm
