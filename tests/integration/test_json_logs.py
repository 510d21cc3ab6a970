"""``--log-format json``: the whole stderr of a real agl-server is JSON lines, gRPC core included,
and Work-stream workers are logged when they connect and when they leave."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import grpc

from agl_core.client import GrpcStore
from agl_core.proto import runner_pb2 as r
from agl_core.proto import runner_pb2_grpc
from agl_core.types import new_span
from agl_server.process import ServerProcess


async def test_json_log_is_pure_and_names_worker_connects_and_disconnects(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    # gRPC's C core at its most talkative: lines it writes to descriptor 2 itself, which must come
    # out as JSON too.
    env = {**os.environ, "GRPC_VERBOSITY": "debug", "GRPC_TRACE": "server_channel"}
    server = ServerProcess(
        tmp_path / "data", args=["--log-format", "json", "--durability", "nosync"], env=env, log_path=log
    ).start()
    try:
        store = GrpcStore(server.address)
        try:
            rollout = await store.start_rollout({"task": "logs"})
            stray = new_span("stray", rollout_id=rollout.rollout_id, attempt_id="at-nope")
            assert len((await store.add_spans([stray])).rejected) == 1
        finally:
            await store.close()
        async with grpc.aio.insecure_channel(server.address) as channel:
            call = runner_pb2_grpc.RunnerServiceStub(channel).Work()
            await call.write(r.WorkRequest(hello=r.WorkerHello(worker_id="wk-logged", capacity=1)))
            async with asyncio.timeout(60):
                welcome = await call.read()
            assert welcome.WhichOneof("kind") == "welcome"
            await call.done_writing()  # the worker leaves cleanly
            async with asyncio.timeout(60):
                while await call.read() is not grpc.aio.EOF:
                    pass
    finally:
        assert server.stop() == 0

    lines = log.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"line {number} of the log is not JSON: {line!r}") from None
    assert all({"time", "level", "logger", "message"} <= set(record) for record in records)
    core = [record for record in records if record["logger"] == "grpc"]
    assert core, "gRPC core wrote nothing at GRPC_VERBOSITY=debug: the test proves nothing"
    assert all(record["source"] == "grpc-core" and ".cc:" in record["where"] for record in core)
    events = {record.get("event"): record for record in records if record.get("worker_id") == "wk-logged"}
    assert events["worker_connected"]["capacity"] == 1
    assert events["worker_disconnected"]["reason"] == "its Work stream ended"
    rejected = [record for record in records if record.get("transport") == "grpc" and "rejected" in record["message"]]
    assert rejected and rejected[0]["reason"] == "not_found" and rejected[0]["rejected_spans"] == 1
    assert any(record["message"] == "agl-server stopped" for record in records)
