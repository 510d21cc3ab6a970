"""Fixtures: a real agl-server with its HTTP listener (``--http-port 0``), with and without a token."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from support.http_listener import TOKEN

from agl_core.client import GrpcStore
from agl_server.process import ServerProcess


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """agl-server with the HTTP listener on a free port (nosync: these tests are not about fsync)."""
    process = ServerProcess(
        tmp_path / "data", args=["--http-port", "0", "--durability", "nosync"], log_path=tmp_path / "server.log"
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """agl-server with a token: the HTTP listener must ask for it too."""
    process = ServerProcess(
        tmp_path / "data",
        args=["--http-port", "0", "--durability", "nosync"],
        env={**os.environ, "AGL_TOKEN": TOKEN},
        log_path=tmp_path / "server.log",
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@pytest.fixture
async def grpc_store(http_server: ServerProcess) -> AsyncIterator[GrpcStore]:
    store = GrpcStore(http_server.address)
    try:
        yield store
    finally:
        await store.close()
