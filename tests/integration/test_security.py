"""Security defaults of the daemons, on real processes: tokens by environment or file (never on a
command line), a private data directory, warnings for open addresses, and the LLM proxy's token."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from support.openai_server import OpenAIServer

from agl_core import UnauthenticatedError
from agl_core.client import GrpcStore
from agl_server.process import ServerProcess

TOKEN = "s3cret-token-for-the-test"
OPEN_WARNING = "with no token: anyone who can reach this port may call it"


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def without_tokens() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AGL_TOKEN", "AGL_LLM_PROXY_TOKEN"))}


@pytest.mark.parametrize("source", ["env", "env-file", "option-file"])
async def test_the_server_takes_its_token_from_the_environment_or_a_file(tmp_path: Path, source: str) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    env, args = without_tokens(), []
    if source == "env":
        env["AGL_TOKEN"] = TOKEN
    elif source == "env-file":
        env["AGL_TOKEN_FILE"] = str(token_file)
    else:
        args = ["--token-file", str(token_file)]
    with ServerProcess(tmp_path / "data", args=args, env=env) as server:
        assert server.process is not None and TOKEN not in cmdline(server.process.pid)
        async with GrpcStore(server.address, token="") as anonymous:
            with pytest.raises(UnauthenticatedError):
                await anonymous.query_rollouts()
        async with GrpcStore(server.address, token=TOKEN) as store:
            assert (await store.enqueue_rollout("x")).input == "x"


def test_an_empty_token_file_stops_the_server_instead_of_turning_auth_off(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agl_server",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
            "--token-file",
            str(tmp_path / "token"),
        ],
        env=without_tokens(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "is empty" in done.stderr, done.stderr


def test_the_data_directory_is_private(server: ServerProcess) -> None:
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
    for name in ("data.mdb", "lock.mdb"):
        assert stat.S_IMODE((server.data_dir / name).stat().st_mode) == 0o600, name


def test_an_open_address_without_a_token_is_warned_about(server: ServerProcess, tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "open", host="0.0.0.0", env=without_tokens()) as open_server:
        assert f"agl-server serves 0.0.0.0 {OPEN_WARNING}" in open_server.log_tail()
    with ServerProcess(tmp_path / "tokened", host="0.0.0.0", env={**without_tokens(), "AGL_TOKEN": TOKEN}) as tokened:
        log = tokened.log_tail()
        assert OPEN_WARNING not in log and "agl-server serves 0.0.0.0 without TLS" in log
    assert "serves" not in server.log_tail()  # loopback: nothing to warn about


def start_proxy(tmp_path: Path, backend: str, host: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    ready = tmp_path / f"proxy-{host}.json"
    log = open(tmp_path / f"proxy-{host}.log", "wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agl_llm_proxy",
            "--backend",
            backend,
            "--host",
            host,
            "--port",
            "0",
            "--ready-file",
            str(ready),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    log.close()
    deadline = time.monotonic() + 120  # start-up on a loaded machine
    while not ready.exists():
        assert process.poll() is None, (tmp_path / f"proxy-{host}.log").read_text()
        assert time.monotonic() < deadline, "the proxy did not serve within 120s"
        time.sleep(0.05)
    return process, int(json.loads(ready.read_text())["port"])


async def test_the_llm_proxy_refuses_callers_without_its_token(openai_server: OpenAIServer, tmp_path: Path) -> None:
    env = {**without_tokens(), "AGL_LLM_PROXY_TOKEN": TOKEN}
    process, port = start_proxy(tmp_path, openai_server.base_url, "127.0.0.1", env)
    try:
        assert TOKEN not in cmdline(process.pid)
        url = f"http://127.0.0.1:{port}/rollout/ro-1/attempt/at-1/v1/chat/completions"
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                async with http.post(url, json=body, headers=headers) as response:
                    assert response.status == 401
                    assert response.headers["WWW-Authenticate"].startswith("Bearer")
                    assert (await response.json())["error"]["type"] == "authentication_error"
            async with http.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                assert response.status == 200, await response.text()
                assert (await response.json())["choices"][0]["message"]["content"] == "echo: hi"
            async with http.get(f"http://127.0.0.1:{port}/health") as response:
                assert response.status == 200  # probes need no token
        assert len(openai_server.requests) == 1  # refused calls never reached the backend
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0


def test_the_llm_proxy_warns_when_it_serves_an_open_address_without_a_token(
    openai_server: OpenAIServer, tmp_path: Path
) -> None:
    process, _ = start_proxy(tmp_path, openai_server.base_url, "0.0.0.0", without_tokens())
    process.terminate()
    assert process.wait(timeout=60) == 0
    log = (tmp_path / "proxy-0.0.0.0.log").read_text()
    assert f"agl-llm-proxy serves 0.0.0.0 {OPEN_WARNING}" in log and "AGL_LLM_PROXY_TOKEN" in log
