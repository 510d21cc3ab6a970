"""The HTTP listener of a real agl-server: token, precise 4xx, health, the default of being off."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import aiohttp
import pytest
from support.certs import needs_openssl, self_signed
from support.http_listener import TOKEN, scrape

from agl_server.process import ServerProcess


async def test_token_is_required_on_every_path_but_healthz(token_server: ServerProcess, http: aiohttp.ClientSession):
    base = token_server.http_url
    async with http.get(f"{base}/healthz") as response:
        assert response.status == 200
        assert (await response.json())["status"] == "serving"
    for method, path in (("GET", "/metrics"), ("POST", "/v1/traces"), ("GET", "/no-such-path")):
        async with http.request(method, f"{base}{path}") as response:
            assert response.status == 401, path
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert "Authorization: Bearer" in (await response.json())["error"]
        async with http.request(method, f"{base}{path}", headers={"Authorization": "Bearer wrong"}) as response:
            assert response.status == 401
            assert "not valid" in (await response.json())["error"]
    samples = await scrape(http, token_server, Authorization=f"Bearer {TOKEN}")
    assert samples["agl_queue_depth"] == 0


async def test_unknown_paths_and_methods_get_404_and_405(http_server: ServerProcess, http: aiohttp.ClientSession):
    base = http_server.http_url
    async with http.get(f"{base}/no-such-path") as response:
        assert response.status == 404
        assert (await response.json())["error"] == "no such path: /no-such-path"
    async with http.post(f"{base}/metrics", data=b"x") as response:
        assert response.status == 405
        assert "GET" in response.headers["Allow"]
        assert "POST is not allowed on /metrics" in (await response.json())["error"]
    async with http.get(f"{base}/v1/traces") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"


def test_listener_is_off_by_default(server: ServerProcess) -> None:
    assert server.http_port is None
    with pytest.raises(RuntimeError, match="--http-port"):
        server.http_url  # noqa: B018


def test_port_in_use_fails_the_start_with_a_message(http_server: ServerProcess, tmp_path: Path) -> None:
    taken = str(http_server.http_port)
    other = ServerProcess(tmp_path / "other", args=["--http-port", taken], log_path=tmp_path / "other.log")
    with pytest.raises(Exception, match="could not bind the HTTP listener"):
        other.start(timeout=120)
    assert other.process is not None and other.process.returncode == 1


@needs_openssl
async def test_listener_serves_https_with_the_servers_certificate(tmp_path: Path, http: aiohttp.ClientSession):
    cert, key = self_signed(tmp_path)
    args = ["--http-port", "0", "--tls-cert", str(cert), "--tls-key", str(key)]
    with ServerProcess(tmp_path / "data", args=args, log_path=tmp_path / "server.log") as server:
        https = server.http_url.replace("http://", "https://")
        trusted = ssl.create_default_context(cafile=str(cert))
        async with http.get(f"{https}/metrics", ssl=trusted) as response:
            assert response.status == 200
            assert "agl_queue_depth" in await response.text()
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"{server.http_url}/healthz") as response:
                await response.read()


async def test_otlp_path_says_when_the_receiver_plugin_is_blocked(tmp_path: Path, http: aiohttp.ClientSession):
    env = {**os.environ, "AGL_DISABLE_PLUGINS": "service-otlp"}
    with ServerProcess(tmp_path / "data", args=["--http-port", "0"], env=env, log_path=tmp_path / "s.log") as server:
        headers = {"Content-Type": "application/x-protobuf"}
        async with http.post(f"{server.http_url}/v1/traces", data=b"", headers=headers) as response:
            assert response.status == 404
            assert "service-otlp" in (await response.json())["error"]
        samples = await scrape(http, server)
        assert "agl_spans_accepted_total{transport=otlp_http}" not in samples
        assert samples["agl_spans_accepted_total{transport=grpc}"] == 0
