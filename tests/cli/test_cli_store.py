"""``agl rollouts delete``, ``agl store backup`` and ``agl store stats`` against a real agl-server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from agl_core import new_span
from agl_core.client import GrpcStore
from agl_server.process import ServerProcess


async def _rollouts(address: str) -> dict[str, str]:
    """Two succeeded rollouts with spans, one cancelled, one running: {name: rollout id}."""
    async with GrpcStore(address) as store:
        ids: dict[str, str] = {}
        for name in ("done-1", "done-2"):
            rollout = await store.start_rollout(name)
            attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
            await store.add_spans(
                [new_span(f"s{i}", rollout_id=rollout.rollout_id, attempt_id=attempt_id) for i in range(4)]
            )
            await store.update_attempt(rollout.rollout_id, attempt_id, status="succeeded")
            ids[name] = rollout.rollout_id
        cancelled = await store.start_rollout("cancelled")
        await store.update_rollout(cancelled.rollout_id, status="cancelled")
        ids["cancelled"] = cancelled.rollout_id
        ids["running"] = (await store.start_rollout("running")).rollout_id
        return ids


async def _remaining(address: str) -> set[str]:
    async with GrpcStore(address) as store:
        return {r.rollout_id for r in await store.query_rollouts()}


def test_rollouts_delete_by_id_status_and_age(server: ServerProcess, agl: Any) -> None:
    ids = asyncio.run(_rollouts(server.address))
    at = ("--server", server.address)

    dry = agl("rollouts", "delete", "--status", "succeeded", "--dry-run", "--json", *at)
    assert dry.code == 0, dry.err
    assert dry.json() == {
        "deleted_rollouts": 2,
        "deleted_attempts": 2,
        "deleted_spans": 8,
        "not_found_rollout_ids": [],
        "skipped_active": 0,
        "dry_run": True,
    }

    one = agl("rollouts", "delete", ids["done-1"], "nope", *at)
    assert one.code == 1
    assert one.out.strip() == "deleted 1 rollouts (1 attempts, 4 spans)"
    assert "rollout 'nope' not found" in one.err

    refused = agl("rollouts", "delete", ids["running"], *at)
    assert refused.code == 1 and "cancel them first" in refused.err and "--force" not in refused.out

    by_age = agl("rollouts", "delete", "--older-than", "0.001s", *at)
    assert by_age.code == 0, by_age.err
    assert "deleted 2 rollouts" in by_age.out and "kept 1 unfinished" in by_age.out
    assert asyncio.run(_remaining(server.address)) == {ids["running"]}

    forced = agl("rollouts", "delete", ids["running"], "--force", *at)
    assert forced.code == 0 and asyncio.run(_remaining(server.address)) == set()


def test_rollouts_delete_bad_input_is_a_usage_error(server: ServerProcess, agl: Any) -> None:
    at = ("--server", server.address)
    assert agl("rollouts", "delete", "--older-than", "soon", *at).code == 2
    bad_status = agl("rollouts", "delete", "--status", "finished", *at)
    assert bad_status.code == 2 and "'finished' is not a rollout status" in bad_status.err
    bad_time = agl("rollouts", "delete", "--ended-before", "yesterday", *at)
    assert bad_time.code == 2 and "neither ISO 8601" in bad_time.err
    empty = agl("rollouts", "delete", *at)
    assert empty.code == 1 and "the selection is empty" in empty.err


def test_store_backup_and_stats(server: ServerProcess, agl: Any, tmp_path: Path) -> None:
    ids = asyncio.run(_rollouts(server.address))
    at = ("--server", server.address)
    stats = agl("store", "stats", "--json", *at)
    assert stats.code == 0, stats.err
    sizes = stats.json()
    assert sizes["file_bytes"] >= sizes["data_bytes"] >= sizes["used_bytes"] > 0

    table = agl("store", "stats", *at)
    assert "data file" in table.out and "free for reuse" in table.out

    dest = tmp_path / "copy"
    backup = agl("store", "backup", str(dest), "--json", *at)
    assert backup.code == 0, backup.err
    info = backup.json()
    assert info["path"] == str(dest / "data.mdb") and info["bytes"] == os.path.getsize(dest / "data.mdb")
    assert info["bytes"] < sizes["file_bytes"]

    again = agl("store", "backup", str(dest), *at)
    assert again.code == 2 and "not an empty directory" in again.err

    restored = ServerProcess(dest, log_path=tmp_path / "restored.log").start()
    try:
        assert asyncio.run(_remaining(restored.address)) == set(ids.values())
    finally:
        restored.stop()
