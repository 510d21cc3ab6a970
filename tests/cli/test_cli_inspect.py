"""``agl rollouts list|show|spans``, ``agl resources``, ``agl workers``, ``agl stats`` and ``agl export``
against a real agl-server holding rollouts that real runners ran (tests/cli/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.cli_data import Held

from agl_core.client.channel import DEFAULT_ADDRESS


def rows(table: str) -> list[list[str]]:
    """The table's lines split on runs of two or more spaces (cells hold single spaces at most)."""
    return [re.split(r"\s{2,}", line.strip()) for line in table.splitlines() if line.strip()]


def test_version_names_the_installed_package() -> None:
    from importlib.metadata import version

    done = subprocess.run([sys.executable, "-m", "agl_core.cli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stdout.strip() == f"agl {version('agl')}"


def test_rollouts_list_as_json_and_table(held: Held, agl: Any) -> None:
    listing = agl("rollouts", "list", "--server", held.address, "--json")
    assert listing.code == 0, listing.err
    data = listing.json()
    assert data["total"] == 4
    by_id = {item["rollout_id"]: item for item in data["items"]}
    assert set(by_id) == {*held.succeeded, held.failed, held.queued}
    assert [by_id[i]["status"] for i in held.succeeded] == ["succeeded", "succeeded"]
    assert by_id[held.failed]["status"] == "failed" and by_id[held.queued]["status"] == "queuing"
    assert by_id[held.succeeded[0]]["input"] == {"x": 1}
    assert by_id[held.succeeded[0]]["attempt"]["status"] == "succeeded"
    assert by_id[held.queued]["attempt"] is None

    table = agl("rollouts", "list", "--server", held.address)
    assert table.code == 0
    lines = rows(table.out)
    assert lines[0][:3] == ["ROLLOUT", "STATUS", "MODE"]
    cells = {line[0]: line for line in lines[1:-1]}
    assert set(cells) == set(by_id)
    assert cells[held.failed][1:3] == ["failed", "val"]
    assert cells[held.succeeded[1]][1:9:7] == ["succeeded", "2"]  # STATUS and REWARD
    assert lines[-1] == ["1-4 of 4 rollouts"]


def test_rollouts_list_filters(held: Held, agl: Any) -> None:
    def ids(*args: str) -> tuple[int, set[str]]:
        data = agl("rollouts", "list", "--server", held.address, "--json", *args).json()
        return data["total"], {item["rollout_id"] for item in data["items"]}

    assert ids("--status", "succeeded") == (2, set(held.succeeded))
    assert ids("--status", "failed,queuing") == (2, {held.failed, held.queued})
    assert ids("--mode", "val") == (1, {held.failed})
    assert ids("--id", held.queued, "--id", held.failed) == (2, {held.failed, held.queued})
    assert ids("--id-contains", held.failed[-6:]) == (1, {held.failed})
    total, page = ids("--limit", "1", "--sort-by", "rollout_id", "--order", "asc")
    assert total == 4 and page == {min([*held.succeeded, held.failed, held.queued])}

    bad = agl("rollouts", "list", "--server", held.address, "--status", "done")
    assert bad.code == 2 and "unknown status done" in bad.err and "succeeded" in bad.err


def test_rollouts_show_attempts_reward_resources_and_history(held: Held, agl: Any) -> None:
    shown = agl("rollouts", "show", held.succeeded[1], "--server", held.address, "--json")
    assert shown.code == 0, shown.err
    data = shown.json()
    assert data["rollout"]["rollout_id"] == held.succeeded[1] and data["rollout"]["status"] == "succeeded"
    assert data["resources"] == {"resources_id": held.resources[1], "version": 1}
    assert data["reward"] == 2.0 and data["rewards"] == {"reward": 2.0}
    [attempt] = data["attempts"]
    assert attempt["status"] == "succeeded" and attempt["reward"] == 2.0 and attempt["sequence_id"] == 1
    assert attempt["start_time"] <= attempt["end_time"]
    history = data["history"]
    assert [(e["old_status"], e["new_status"]) for e in history] == [
        (None, "queuing"),
        ("queuing", "running"),  # the runner's Work stream has its attempts claimed RUNNING
        ("running", "succeeded"),
    ]
    assert [e["event_id"] for e in history] == sorted(e["event_id"] for e in history)
    assert {e["attempt_id"] for e in history[1:]} == {attempt["attempt_id"]}

    quick = agl("rollouts", "show", held.succeeded[1], "--no-history", "--server", held.address, "--json").json()
    assert quick["history"] is None and quick["attempts"] == data["attempts"]

    failed = agl("rollouts", "show", held.failed, "--server", held.address, "--json").json()
    assert failed["reward"] is None and failed["attempts"][0]["status"] == "failed"
    assert failed["attempts"][0]["metadata"]["error_message"] == "negative input"

    table = agl("rollouts", "show", held.succeeded[1], "--server", held.address)
    assert table.code == 0
    assert f"resources     {held.resources[1]} v1" in table.out
    assert re.search(r"^reward\s+2\s*$", table.out, re.M)
    assert re.search(rf"^1\s+{attempt['attempt_id']}\s+succeeded\s+worker-\d", table.out, re.M)
    assert re.search(r"running\s+succeeded\s+" + attempt["attempt_id"], table.out)


def test_rollouts_spans_tree(held: Held, agl: Any) -> None:
    spans = agl("rollouts", "spans", held.succeeded[0], "--server", held.address, "--json")
    assert spans.code == 0, spans.err
    tree = spans.json()["spans"]
    shape = [(span["depth"], span["name"]) for span in tree]
    assert shape == [(0, f"rollout {held.succeeded[0]}"), (1, "plan"), (2, "lookup"), (1, "agl.reward")]
    by_name = {span["name"]: span for span in tree}
    assert by_name["lookup"]["parent_span_id"] == by_name["plan"]["span_id"]
    assert by_name["lookup"]["attributes"] == {"x": 1}
    assert by_name["agl.reward"]["attributes"]["agl.reward.value"] == 1.0
    assert all(span["end_time_unix_nano"] >= span["start_time_unix_nano"] for span in tree)

    table = agl("rollouts", "spans", held.succeeded[0], "--server", held.address)
    lines = table.out.splitlines()
    assert lines[0].split()[:3] == ["SPAN", "OFFSET", "DURATION"]
    names = [re.split(r"(?<=\S)\s{2,}", line)[0] for line in lines[1:5]]  # indentation kept
    assert names == [f"rollout {held.succeeded[0]}", "  plan", "    lookup", "  agl.reward"]
    assert re.search(r"^    lookup\s+\d+\.\d+ms\s+\d+\.\d+ms\s+at-", table.out, re.M)
    assert lines[-1] == "4 spans"


def test_resources_list_show_and_diff(held: Held, agl: Any) -> None:
    first, latest = held.resources
    listing = agl("resources", "list", "--server", held.address, "--json").json()
    assert listing["total"] == 2 and listing["latest"] == latest
    assert [item["resources_id"] for item in listing["items"]] == [latest, first]
    prompt = listing["items"][1]["resources"]["prompt"]
    assert prompt == {"type": "prompt_template", "template": "Solve {task}.\nShow your work.", "engine": "f-string"}
    assert listing["items"][0]["resources"]["main_llm"]["api_key"] == "***"  # never printed

    table = rows(agl("resources", "list", "--server", held.address).out)
    assert table[1][:3] == [latest, "1", "*"] and table[2][:2] == [first, "1"]

    shown = agl("resources", "show", "--server", held.address)
    assert shown.code == 0 and shown.out.startswith(f"resources {latest} version 1")
    assert "  Answer in one line." in shown.out and "sk-secret" not in shown.out

    diff = agl("resources", "diff", first, latest, "--server", held.address)
    assert diff.code == 1  # they differ, as diff(1) says
    assert "-  Show your work.\n+  Answer in one line.\n" in diff.out
    data = agl("resources", "diff", first, latest, "--server", held.address, "--json").json()
    assert data["changed"] == ["prompt"] and data["added"] == data["removed"] == [] and not data["same"]
    same = agl("resources", "diff", first, first, "--server", held.address)
    assert same.code == 0 and "hold the same resources" in same.out

    missing = agl("resources", "show", "rs-nope", "--server", held.address)
    assert (
        missing.code == 1
        and missing.err.strip() == "agl: resources 'rs-nope' not found (`agl resources list` shows the ids)"
    )


def test_workers_and_stats(held: Held, agl: Any) -> None:
    workers = agl("workers", "--server", held.address, "--json").json()
    assert workers["total"] == 2
    assert {w["worker_id"] for w in workers["items"]} == {"worker-0", "worker-1"}
    table = rows(agl("workers", "--server", held.address).out)
    assert [line[0] for line in table[1:3]] == ["worker-0", "worker-1"]

    stats = agl("stats", "--server", held.address, "--json").json()
    assert stats["rollouts"] == 4 and stats["attempts"] == 3 and stats["workers"] == 2 and stats["resources"] == 2
    assert stats["rollouts_by_status"]["succeeded"] == 2 and stats["rollouts_by_status"]["queuing"] == 1
    assert stats["queue_length"] == 1 and stats["spans"] >= 11 and stats["data_bytes"] > 0
    assert isinstance(stats["start_time"], float)
    text = agl("stats", "--server", held.address).out
    assert re.search(r"^rollouts\s+4\s*$", text, re.M) and re.search(r"^queue length\s+1\s*$", text, re.M)


def read_jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


async def stored(address: str) -> tuple[list[Any], list[Any], list[Any]]:
    """Every rollout, attempt and span the server holds, read with the client API."""
    from agl_core.client import GrpcStore

    store = GrpcStore(address)
    try:
        rollouts = (await store.query_rollouts(limit=1000)).items
        attempts = [a for r in rollouts for a in (await store.query_attempts(r.rollout_id)).items]
        spans = [s for r in rollouts for s in await store.query_spans(r.rollout_id)]
    finally:
        await store.close()
    return rollouts, attempts, spans


def test_export_round_trips(held: Held, agl: Any, tmp_path: Path) -> None:
    out = tmp_path / "export.jsonl"
    done = agl("export", "--out", str(out), "--server", held.address)
    assert done.code == 0, done.err
    assert "exported 4 rollouts" in done.err
    lines = read_jsonl(out.read_text())
    assert not list(tmp_path.glob(".export.jsonl.*"))  # the partial file is gone
    kinds = [line["kind"] for line in lines]
    assert kinds[0] == "rollout" and kinds[-1] == "summary"

    rollouts, attempts, spans = asyncio.run(stored(held.address))
    exported = {kind: [line for line in lines if line["kind"] == kind] for kind in ("rollout", "attempt", "span")}
    assert {r["rollout_id"] for r in exported["rollout"]} == {r.rollout_id for r in rollouts}
    assert sorted(a["attempt_id"] for a in exported["attempt"]) == sorted(a.attempt_id for a in attempts)
    assert sorted((s["attempt_id"], s["span_id"]) for s in exported["span"]) == sorted(
        (s.attempt_id, s.span_id.hex()) for s in spans
    )
    assert lines[-1]["rollouts"] == len(rollouts) and lines[-1]["spans"] == len(spans)
    # Every attempt and span line follows its own rollout's line.
    current = None
    for line in lines[:-1]:
        if line["kind"] == "rollout":
            current = line["rollout_id"]
        else:
            assert line["rollout_id"] == current

    to_stdout = agl("export", "--out", "-", "--status", "succeeded", "--no-spans", "--server", held.address)
    streamed = read_jsonl(to_stdout.out)
    assert [line["kind"] for line in streamed] == ["rollout", "attempt", "rollout", "attempt", "summary"]
    assert {line["rollout_id"] for line in streamed[:-1]} == set(held.succeeded)


def test_unknown_rollout_and_bad_address_give_one_line(held: Held, agl: Any) -> None:
    for command in (["rollouts", "show"], ["rollouts", "spans"], ["rollouts", "watch", "--spans"]):
        missing = agl(*command, "ro-missing", "--server", held.address)
        assert missing.code == 1
        assert missing.err == (
            "agl: rollout 'ro-missing' not found (`agl rollouts list` shows the ids the server holds)\n"
        ), command
    assert DEFAULT_ADDRESS  # the default is never used here: every call names its server

    # Nothing listens on port 1; the retry deadline keeps the failure quick.
    done = subprocess.run(
        [sys.executable, "-m", "agl_core.cli", "stats", "--server", "127.0.0.1:1", "--retry-deadline", "0.5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("agl: agl-server at 127.0.0.1:1 is not reachable")

    for address in ("", "no-port", "127.0.0.1:99999", "host:port"):
        malformed = agl("stats", "--server", address)
        assert malformed.code == 2 and malformed.err == (
            f"agl: --server {address!r} is not HOST:PORT with a port from 1 to 65535 (for example 127.0.0.1:4747)\n"
        )
