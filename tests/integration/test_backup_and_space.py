"""Backup, restore and space against a real agl-server: pages freed by a deletion are reused, a
compacted backup is smaller than the file it copies, a backup taken while spans stream in is a
consistent store that agl-server serves, and GetStats reports the sizes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import psutil
import pytest
from support.waits import until

from agl_core import new_span
from agl_core.client import GrpcStore
from agl_core.errors import FailedPreconditionError
from agl_core.proto import store_pb2 as s
from agl_server.process import ServerProcess

ROLLOUTS = 20
SPANS = 100
PAYLOAD = "x" * 1000


async def _write_round(store: GrpcStore, tag: str) -> list[str]:
    ids = []
    for i in range(ROLLOUTS):
        rollout = await store.start_rollout(f"{tag}-{i}")
        attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
        await store.add_spans(
            [
                new_span(f"s{j}", rollout_id=rollout.rollout_id, attempt_id=attempt_id, attributes={"p": PAYLOAD})
                for j in range(SPANS)
            ]
        )
        await store.update_attempt(rollout.rollout_id, attempt_id, status="succeeded")
        ids.append(rollout.rollout_id)
    return ids


async def test_freed_pages_are_reused_and_a_compacted_backup_is_smaller(server: ServerProcess, tmp_path: Path) -> None:
    async with GrpcStore(server.address) as store:
        first = await _write_round(store, "a")
        full = await store.stats()
        assert full["file_bytes"] >= full["data_bytes"] >= full["used_bytes"] > ROLLOUTS * SPANS * len(PAYLOAD)
        assert full["map_size_bytes"] >= full["file_bytes"] and full["page_size"] >= 4096

        await store.delete_rollouts(first)
        emptied = await store.stats()
        assert emptied["spans"] == 0
        assert emptied["used_bytes"] < full["used_bytes"] / 10
        assert emptied["free_bytes"] > full["used_bytes"] / 2  # freed, below the high-water mark

        # The same amount written again lands in the freed pages: the file does not grow (a few
        # pages of slack for the free list's own bookkeeping).
        second = await _write_round(store, "b")
        rewritten = await store.stats()
        assert rewritten["spans"] == ROLLOUTS * SPANS
        assert rewritten["data_bytes"] <= full["data_bytes"] * 1.1, (rewritten["data_bytes"], full["data_bytes"])

        # Half deleted: the compacted backup holds only the pages in use.
        await store.delete_rollouts(second[: ROLLOUTS // 2])
        half = await store.stats()
        info = await store.backup(tmp_path / "backup")
        assert info.path == tmp_path / "backup" / "data.mdb" and info.bytes == os.path.getsize(info.path)
        assert info.bytes < half["file_bytes"] * 0.75, (info.bytes, half["file_bytes"])
        assert info.bytes <= half["used_bytes"] + 64 * half["page_size"]
        assert oct(os.stat(info.path).st_mode & 0o777) == oct(0o600)

        with pytest.raises(FailedPreconditionError, match="not an empty directory"):
            await store.backup(tmp_path / "backup")

    restored = ServerProcess(tmp_path / "backup", log_path=tmp_path / "restored.log").start()
    try:
        async with GrpcStore(restored.address) as copy:
            assert {r.rollout_id for r in await copy.query_rollouts()} == set(second[ROLLOUTS // 2 :])
            assert (await copy.stats())["spans"] == ROLLOUTS // 2 * SPANS
            spans = await copy.query_spans(second[-1])
            assert [sp.name for sp in spans] == [f"s{j}" for j in range(SPANS)]
    finally:
        restored.stop()


async def test_a_backup_while_spans_stream_in_is_consistent_and_restorable(
    server: ServerProcess, tmp_path: Path
) -> None:
    acked: list[list] = []  # batches acknowledged, in order
    stop = asyncio.Event()
    under_way = asyncio.Event()
    async with GrpcStore(server.address) as store:
        rollouts = [await store.start_rollout(f"live-{i}") for i in range(4)]

        async def ingest() -> None:
            n = 0
            while not stop.is_set():
                rollout = rollouts[n % len(rollouts)]
                batch = [
                    new_span(
                        f"b{n}-{j}",
                        rollout_id=rollout.rollout_id,
                        attempt_id=rollout.attempt.attempt_id,  # type: ignore[union-attr]
                        attributes={"p": PAYLOAD},
                    )
                    for j in range(50)
                ]
                await store.add_spans(batch)
                acked.append(batch)
                n += 1
                if n == 20:
                    under_way.set()

        task = asyncio.ensure_future(ingest())
        try:
            await asyncio.wait_for(under_way.wait(), 120)  # ingestion is well under way first
            before_backup = sum(map(len, acked))
            await store.backup(tmp_path / "live-backup")
            assert len(acked) > 0
        finally:
            stop.set()
            await task
        total = sum(map(len, acked))

    restored = ServerProcess(tmp_path / "live-backup", log_path=tmp_path / "restored.log").start()
    try:
        async with GrpcStore(restored.address) as copy:
            stats = await copy.stats()
            # Everything acknowledged before the backup started is in it; nothing that was never sent.
            assert before_backup <= stats["spans"] <= total
            per_rollout = [len(await copy.query_spans(r.rollout_id)) for r in rollouts]
            assert sum(per_rollout) == stats["spans"]
            assert stats["rollouts"] == len(rollouts) and stats["attempts"] == len(rollouts)
            # Whole batches only (one batch is one transaction), and the span-id log came along: the
            # first batch sent again is recognised as a duplicate.
            assert stats["spans"] % 50 == 0
            again = await copy.add_spans(acked[0])
            assert again.accepted == 0 and again.duplicates == 50
            # The restored store takes new writes.
            await copy.update_attempt(
                rollouts[0].rollout_id,
                rollouts[0].attempt.attempt_id,  # type: ignore[union-attr]
                status="succeeded",
            )
            assert (await copy.get_rollout(rollouts[0].rollout_id)).status == "succeeded"  # type: ignore[union-attr]
    finally:
        restored.stop()


async def test_an_abandoned_backup_leaves_no_copy_process_behind(server: ServerProcess, tmp_path: Path) -> None:
    async with GrpcStore(server.address) as store:
        await _write_round(store, "big")  # a few MiB: the copy takes several messages
        responses = store.backend.backup_store(s.BackupStoreRequest())
        first = await anext(responses)
        assert first.data and not first.done
        await responses.aclose()  # type: ignore[attr-defined]

        assert server.process is not None
        parent = psutil.Process(server.process.pid)

        def copying(child: psutil.Process) -> bool:
            try:
                return "compact_copy" in " ".join(child.cmdline())
            except psutil.NoSuchProcess:
                return False

        async def no_copy_left() -> bool:
            return not [child for child in parent.children() if copying(child)]

        await until(no_copy_left, timeout=60, what="the abandoned backup's copy process ending")
        # The server serves on, and the next backup is whole.
        info = await store.backup(tmp_path / "after")
        assert info.bytes >= (await store.stats())["used_bytes"] // 2
        assert not list((tmp_path / "after").glob("*.partial"))
