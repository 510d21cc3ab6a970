"""A real agl-server with its HTTP listener (``--http-port 0``), and readers of what it serves."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agl_core.client import GrpcStore
from agl_server.process import ServerProcess

TOKEN = "http-test-token"


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


async def scrape(http: aiohttp.ClientSession, server: ServerProcess, **headers: str) -> dict[str, float]:
    """GET /metrics, parsed by the Prometheus client's own parser: ``{"name{label=value,...}": value}``."""
    async with http.get(f"{server.http_url}/metrics", headers=headers) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples
