"""A real agl-server's HTTP listener in tests: starting one, the token the fixtures use, a /metrics scrape."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from agl_server.process import ServerProcess

TOKEN = "http-test-token"


def listening_server(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> ServerProcess:
    """agl-server with the HTTP listener on a free port (nosync: these tests are not about fsync),
    with ``args`` added; start it with ``with``."""
    return ServerProcess(
        tmp_path / "data",
        args=["--http-port", "0", "--durability", "nosync", *args],
        env=env,
        log_path=tmp_path / "server.log",
    )


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
