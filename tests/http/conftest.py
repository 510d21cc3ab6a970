"""Fixtures: a real agl-server with its HTTP listener (``--http-port 0``), with and without a token."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from support.http_listener import TOKEN, listening_server

from agl_core.client import GrpcStore
from agl_server.process import ServerProcess


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with listening_server(tmp_path) as process:
        yield process


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """agl-server with a token: the HTTP listener must ask for it too."""
    with listening_server(tmp_path, env={**os.environ, "AGL_TOKEN": TOKEN}) as process:
        yield process


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
