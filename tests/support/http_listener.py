"""Reading a real agl-server's HTTP listener in tests: the token the fixtures use, a /metrics scrape."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from agl_server.process import ServerProcess

TOKEN = "http-test-token"


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
