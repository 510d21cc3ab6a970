"""agl-server as an operator sees it: auth, TLS, health, reflection, shutdown, restarts, logs."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support.certs import needs_openssl, self_signed
from support.waits import until_polling

from agl_core import UnauthenticatedError, UnavailableError
from agl_core.client import GrpcStore
from agl_core.types import RolloutStatus
from agl_server.process import ServerProcess, ServerStartError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_health_and_reflection(server: ServerProcess) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "agl.v1.LightningStoreService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = [s.name async for reply in replies for s in reply.list_services_response.service]
        assert "agl.v1.LightningStoreService" in names and "grpc.health.v1.Health" in names


async def test_unreachable_server_gives_an_actionable_error() -> None:
    port = _free_port()
    async with GrpcStore(f"127.0.0.1:{port}", timeout=2) as store:
        with pytest.raises(UnavailableError) as info:
            await store.get_rollout("ro-x")
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and f"agl-server --port {port}" in message
    async with GrpcStore(f"127.0.0.1:{port}") as store:
        with pytest.raises(UnavailableError, match="did not accept a connection"):
            await store.wait_ready(timeout=0.5)


async def test_token_auth(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data", args=["--token", "s3cret"]) as server:
        async with GrpcStore(server.address, token="") as anonymous:
            with pytest.raises(UnauthenticatedError, match="missing authorization"):
                await anonymous.enqueue_rollout("x")
        async with GrpcStore(server.address, token="wrong") as wrong:
            with pytest.raises(UnauthenticatedError, match="not valid"):
                await wrong.query_rollouts()
            rejected = wrong.watch_rollouts(after_event_id=0)
            with pytest.raises(UnauthenticatedError):
                await anext(rejected)
        async with GrpcStore(server.address, token="s3cret") as allowed:
            rollout = await allowed.enqueue_rollout("x")
            assert (await allowed.get_rollout(rollout.rollout_id)) is not None
        async with grpc.aio.insecure_channel(server.address) as channel:  # probes need no token
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


@needs_openssl
async def test_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with ServerProcess(tmp_path / "data", args=["--tls-cert", str(cert), "--tls-key", str(key)]) as server:
        async with GrpcStore(server.address, root_certificates=cert.read_bytes()) as secure:
            rollout = await secure.enqueue_rollout({"over": "tls"})
            assert (await secure.get_rollout(rollout.rollout_id)).input == {"over": "tls"}  # type: ignore[union-attr]
        async with GrpcStore(server.address, timeout=2) as plaintext:
            with pytest.raises(UnavailableError):
                await plaintext.get_rollout(rollout.rollout_id)


async def test_sigterm_ends_long_polls_promptly_and_exits_cleanly(server: ServerProcess) -> None:
    # retry_deadline=0: the client reports the UNAVAILABLE the stopping server answers with, instead
    # of retrying it through the outage (docs/retry.md), which is what this test looks at.
    async with GrpcStore(server.address, retry_deadline=0) as store:
        rollout_id = (await store.start_rollout("x")).rollout_id
        # Both calls go on one connection, the wait first: once the poll is parked on the server,
        # the wait has reached it too.
        waiter = asyncio.create_task(store.wait_for_rollouts([rollout_id], timeout=60))
        poll = asyncio.create_task(store.dequeue_rollout(worker_id="w", wait=60))
        await until_polling(store, "w")
        started = time.monotonic()
        code = await asyncio.to_thread(server.stop, 20)
        assert code == 0
        assert await asyncio.wait_for(poll, 10) is None  # "no work" rather than a hang
        with pytest.raises(UnavailableError):
            await asyncio.wait_for(waiter, 10)
        assert time.monotonic() - started < 10
    assert "agl-server stopped" in server.log_tail()


async def test_watch_resumes_across_a_restart_without_gaps(server: ServerProcess) -> None:
    async with GrpcStore(server.address) as producer_store, GrpcStore(server.address) as watcher_store:
        ids = [r.rollout_id for r in await producer_store.enqueue_rollouts([{"input": i} for i in range(10)])]
        seen: list[int] = []
        async with watcher_store.watch_rollouts(rollout_ids=ids, status_in=["cancelled"]) as watch:
            for rollout_id in ids[:5]:
                await producer_store.update_rollout(rollout_id, status="cancelled")
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.restart)
            for rollout_id in ids[5:]:
                await producer_store.update_rollout(rollout_id, status="cancelled")
            async with asyncio.timeout(30):
                async for event in watch:
                    assert event.new_status == RolloutStatus.CANCELLED
                    seen.append(ids.index(event.rollout_id))
                    if len(seen) == 10:
                        break
        assert seen == list(range(10))


def test_json_logs_and_bad_store_name(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", args=["--log-format", "json"], log_path=tmp_path / "json.log")
    with server:
        pass
    lines = [json.loads(line) for line in (tmp_path / "json.log").read_text().splitlines() if line.startswith("{")]
    listening = [entry for entry in lines if entry["message"].startswith("agl-server listening")]
    assert listening and listening[0]["level"] == "info" and listening[0]["durability"] == "sync"
    result = subprocess.run(
        [sys.executable, "-m", "agl_server", "--store", "nope", "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "no store backend named 'nope'; installed: lmdb" in result.stderr


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerStartError) as info:
            ServerProcess(tmp_path / "data", port=port).start(timeout=30)
        assert f"agl-server: could not bind 127.0.0.1:{port}: the port is in use" in str(info.value)
        assert "Traceback" not in str(info.value)


def test_a_server_process_leaves_no_scratch_directory(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    scratch = server.log_path.parent
    assert (scratch / "ready.json").exists() and server.log_path.exists()
    server.stop()
    assert "agl-server" in server.log_tail()  # the log is readable while the object lives
    del server
    gc.collect()
    assert not scratch.exists()
    # A log the caller placed is the caller's, and stays.
    kept = tmp_path / "kept.log"
    with ServerProcess(tmp_path / "data", log_path=kept).start() as other:
        pass
    del other
    gc.collect()
    assert "agl-server" in kept.read_text()
    # close() removes it at once, for an owner that may be killed (a Ray actor) before it could.
    third = ServerProcess(tmp_path / "data").start()
    assert third.close() == 0
    assert not third.log_path.parent.exists() and not third.alive()


def test_a_server_process_runs_the_installed_agl_whatever_the_callers_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The caller works in a directory holding another agl_server (a checkout of another version, say).
    other = tmp_path / "elsewhere" / "agl_server"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("")
    (other / "__main__.py").write_text("raise SystemExit('the agl_server of the working directory ran')\n")
    monkeypatch.chdir(other.parent)
    log = tmp_path / "server.log"
    with ServerProcess(tmp_path / "data", log_path=log) as server, grpc.insecure_channel(server.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert "working directory ran" not in log.read_text()


@pytest.mark.parametrize(
    ("name", "value", "advice"),
    [
        ("AGL_SERVER_GC_THRESHOLDS", "700,ten,10", "give three positive integers 'g0,g1,g2'"),
        ("AGL_SERVER_GC_THRESHOLDS", "700,10", "give three positive integers 'g0,g1,g2'"),
        ("AGL_SERVER_SWITCH_INTERVAL_MS", "0", "give milliseconds between 0.01 and 100"),
        ("AGL_SERVER_SWITCH_INTERVAL_MS", "nan", "give milliseconds between 0.01 and 100"),
        ("AGL_SERVER_PYTHON_CPU", "first", "give 'auto', 'off' or "),
        ("AGL_SERVER_PYTHON_CPU", "4096", "give 'auto', 'off' or "),
        ("AGL_SPAN_LOOP", "fast", "give 'compiled' or 'python' (the store writer's span loop)"),
        ("AGL_EDGE_CHECK", "fast", "give 'wire' or 'parse' (how agl-server checks a batch of spans)"),
        ("AGL_INLINE_COMMITS", "yes", "give 'on' (a lone stream's writes commit on the event loop) or 'off'"),
    ],
)
def test_interpreter_settings_are_checked_before_start(tmp_path: Path, name: str, value: str, advice: str) -> None:
    # agl-server tunes the garbage collector, the GIL switch interval and its Python threads' CPU once
    # started (agl_server.tuning); a bad override is refused with the form to use, before anything is
    # opened.
    result = subprocess.run(
        [sys.executable, "-m", "agl_server", "--data-dir", str(tmp_path / "d"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, name: value},
    )
    assert result.returncode != 0
    assert f"agl-server: {name}={value!r}: {advice}" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "d").exists()


def test_interpreter_settings_can_be_overridden(tmp_path: Path) -> None:
    env = {**os.environ, "AGL_SERVER_GC_THRESHOLDS": "1000,10,10", "AGL_SERVER_SWITCH_INTERVAL_MS": "5"}
    with ServerProcess(tmp_path / "data", env=env) as server:
        assert server.address
