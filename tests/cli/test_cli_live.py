"""``agl rollouts watch`` and ``agl rollouts cancel`` against a real agl-server: the watch sees
changes made after it started (the test waits for its ``watching`` line, an event, not a sleep)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from agl_core.client import GrpcStore
from agl_core.types import new_span
from agl_server.process import ServerProcess

DEADLINE = 120.0  # a give-up bound for a loaded machine; every wait returns as soon as its event comes


async def start_agl(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agl_core.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def subscribed(process: asyncio.subprocess.Process) -> str:
    """The ``watching ...`` line the command writes once its subscription is in place."""
    assert process.stderr is not None
    line = (await asyncio.wait_for(process.stderr.readline(), DEADLINE)).decode()
    assert line.startswith("watching"), line
    return line


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    try:
        out, err = await asyncio.wait_for(process.communicate(), DEADLINE)
    except TimeoutError:
        # Not left running: its pipes, collected later, would fail whichever test runs then. It may
        # have exited just as the deadline passed; then there is nothing to kill.
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    return process.returncode or 0, out.decode(), err.decode()


async def test_watch_prints_a_status_change_made_after_it_started(grpc_store: GrpcStore) -> None:
    watched = await grpc_store.start_rollout({"task": "watched"})
    other = await grpc_store.start_rollout({"task": "other"})
    process = await start_agl(
        "rollouts", "watch", "--id", watched.rollout_id, "--count", "2", "--json", "--server", grpc_store.address
    )
    try:
        await subscribed(process)
        await grpc_store.update_rollout(other.rollout_id, status="cancelled")  # filtered out by --id
        await grpc_store.update_attempt(watched.rollout_id, "latest", status="running")
        await grpc_store.update_attempt(watched.rollout_id, "latest", status="succeeded")
        code, out, err = await finish(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["rollout_id"], e["old_status"], e["new_status"]) for e in events] == [
        (watched.rollout_id, "preparing", "running"),
        (watched.rollout_id, "running", "succeeded"),
    ]
    assert events[0]["event_id"] < events[1]["event_id"]
    assert events[1]["rollout"]["attempt"]["status"] == "succeeded"
    assert events[1]["attempt_id"] == watched.attempt.attempt_id  # type: ignore[union-attr]


async def test_watch_as_a_table_replays_from_the_start(grpc_store: GrpcStore) -> None:
    rollout = await grpc_store.start_rollout({"task": 1})
    await grpc_store.update_rollout(rollout.rollout_id, status="cancelled")
    process = await start_agl(
        "rollouts", "watch", "--from-start", "--status", "cancelled", "--count", "1", "--server", grpc_store.address
    )
    await subscribed(process)
    code, out, err = await finish(process)
    assert code == 0, err
    assert f"{rollout.rollout_id}  preparing -> cancelled  attempt 1 {rollout.attempt.attempt_id}" in out  # type: ignore[union-attr]


async def test_watch_spans_tails_one_rollout_until_it_finishes(grpc_store: GrpcStore) -> None:
    rollout = await grpc_store.start_rollout({"task": "traced"})
    attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
    await grpc_store.add_spans([new_span("before", rollout_id=rollout.rollout_id, attempt_id=attempt_id)])
    process = await start_agl(
        "rollouts", "watch", "--spans", rollout.rollout_id, "--json", "--interval", "0.05",
        "--server", grpc_store.address,
    )  # fmt: skip
    try:
        await subscribed(process)
        assert process.stdout is not None
        first = json.loads(await asyncio.wait_for(process.stdout.readline(), DEADLINE))
        assert first["name"] == "before"
        # Spans stored after the tail started, then the end of the attempt: the tail prints both
        # spans and stops by itself.
        await grpc_store.add_spans(
            [new_span(name, rollout_id=rollout.rollout_id, attempt_id=attempt_id) for name in ("llm", "tool")]
        )
        await grpc_store.update_attempt(rollout.rollout_id, attempt_id, status="succeeded")
        code, out, err = await finish(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, err
    spans = [json.loads(line) for line in out.splitlines()]
    assert [span["name"] for span in spans] == ["llm", "tool"]
    assert all(span["attempt_id"] == attempt_id for span in spans)
    assert spans[0]["sequence_id"] > first["sequence_id"]


def test_cancel_cancels_open_rollouts_and_names_a_finished_one(server: ServerProcess, agl: Any) -> None:
    async def setup() -> list[str]:
        store = GrpcStore(server.address)
        try:
            open_ = await store.start_rollout({"n": 1})
            queued = (await store.enqueue_rollouts([{"input": {"n": 2}}]))[0]
            done = await store.start_rollout({"n": 3})
            await store.update_attempt(done.rollout_id, "latest", status="succeeded")
            return [open_.rollout_id, queued.rollout_id, done.rollout_id]
        finally:
            await store.close()

    open_id, queued_id, done_id = asyncio.run(setup())
    result = agl("rollouts", "cancel", open_id, queued_id, done_id, "ro-missing", "--server", server.address, "--json")
    assert result.code == 1
    data = result.json()
    assert [(r["rollout_id"], r["status"]) for r in data["cancelled"]] == [
        (open_id, "cancelled"),
        (queued_id, "cancelled"),
    ]
    errors = {e["rollout_id"]: e["error"] for e in data["errors"]}
    assert set(errors) == {done_id, "ro-missing"}
    assert "succeeded" in errors[done_id] and "not found" in errors["ro-missing"]

    listing = agl("rollouts", "list", "--server", server.address, "--json").json()
    statuses = {item["rollout_id"]: item["status"] for item in listing["items"]}
    assert statuses == {open_id: "cancelled", queued_id: "cancelled", done_id: "succeeded"}  # the finished one kept

    again = agl("rollouts", "cancel", done_id, "--server", server.address)
    assert again.code == 1 and again.out == "" and again.err.startswith(f"agl: {done_id}: ")


def test_the_token_comes_from_the_runners_options_and_env(tmp_path: Path, agl: Any, monkeypatch: Any) -> None:
    token = "cli-test-token"
    process = ServerProcess(tmp_path / "data", args=["--token", token], log_path=tmp_path / "server.log").start()
    try:
        refused = agl("stats", "--server", process.address)
        assert refused.code == 1 and len(refused.err.splitlines()) == 1
        assert refused.err.startswith("agl: ") and "AGL_TOKEN" in refused.err  # says how to give one

        token_file = tmp_path / "token"
        token_file.write_text(token + "\n")
        assert agl("stats", "--server", process.address, "--token-file", str(token_file), "--json").code == 0
        assert agl("stats", "--server", process.address, "--token", token, "--json").code == 0
        monkeypatch.setenv("AGL_TOKEN", token)
        monkeypatch.setenv("AGL_SERVER_ADDRESS", process.address)  # the runner's address variable too
        assert agl("stats", "--json").json()["rollouts"] == 0

        monkeypatch.delenv("AGL_TOKEN")
        empty = tmp_path / "empty"
        empty.write_text("")
        unusable = agl("stats", "--token-file", str(empty))
        assert unusable.code == 2 and "is empty" in unusable.err
    finally:
        process.stop()


async def test_ctrl_c_stops_a_watch_without_a_traceback(grpc_store: GrpcStore) -> None:
    process = await start_agl("rollouts", "watch", "--server", grpc_store.address)
    await subscribed(process)
    process.send_signal(signal.SIGINT)
    code, out, err = await finish(process)
    assert code == 130 and out == "" and "Traceback" not in err


def test_export_to_a_pipe_that_closes_early(server: ServerProcess) -> None:
    async def fill() -> None:
        async with GrpcStore(server.address) as store:
            await store.enqueue_rollouts([{"input": {"n": n}} for n in range(300)])

    asyncio.run(fill())
    process = subprocess.Popen(
        [sys.executable, "-m", "agl_core.cli", "export", "--out", "-", "--server", server.address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert json.loads(process.stdout.readline())["kind"] == "rollout"
    process.stdout.close()  # the reader goes away, as `| head -1` does
    err = process.stderr.read().decode()
    assert process.wait(timeout=DEADLINE) == 141 and "Traceback" not in err and "Exception" not in err
