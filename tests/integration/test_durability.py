"""Nothing acknowledged is lost: agl-server killed with SIGKILL mid-stream and restarted on the same
data directory still holds every acknowledged rollout and span; the embedded store reopens with its
watchdog armed again."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from agl_core import LmdbStore, RolloutConfig, new_span
from agl_core.client import GrpcStore
from agl_core.types import AttemptStatus, RolloutStatus
from agl_server.process import ServerProcess


@pytest.mark.parametrize("durability", ["sync", "nosync"])
async def test_acknowledged_spans_and_rollouts_survive_sigkill(tmp_path: Path, durability: str) -> None:
    server = ServerProcess(tmp_path / "data", args=["--durability", durability], log_path=tmp_path / "server.log")
    server.start()
    acked: set[bytes] = set()
    try:
        async with GrpcStore(server.address, reconnect_deadline=60) as store:
            rollouts = [await store.start_rollout({"i": i}, rollout_id=f"task-{i}") for i in range(20)]
            queued = await store.enqueue_rollouts([{"input": i, "rollout_id": f"queued-{i}"} for i in range(20)])
            killed = asyncio.Event()
            restarted = asyncio.Event()

            async def produce(worker: int) -> None:
                batch_no = 0
                while len(acked) < 12_000:
                    rollout = rollouts[(worker * 7 + batch_no) % len(rollouts)]
                    batch = [
                        new_span(
                            "llm",
                            rollout_id=rollout.rollout_id,
                            attempt_id=rollout.attempt.attempt_id,  # type: ignore[union-attr]
                            span_id=os.urandom(8),
                            attributes={"pad": "p" * 400, "w": worker},
                        )
                        for _ in range(40)
                    ]
                    result = await store.add_spans(batch)
                    assert not result.rejected
                    acked.update(span.span_id for span in batch)
                    batch_no += 1
                    if len(acked) >= 4_000 and not killed.is_set():
                        killed.set()
                        server.kill()  # SIGKILL while other batches are in flight
                        await asyncio.to_thread(server.restart)
                        restarted.set()

            await asyncio.wait_for(asyncio.gather(*(produce(w) for w in range(6))), 120)
            assert killed.is_set() and restarted.is_set()
            assert store.backend._streamer is not None and store.backend._streamer.reconnects >= 1  # type: ignore[union-attr]

        server.kill()  # and once more, after the last acknowledgement
        server.restart()
        async with GrpcStore(server.address) as fresh:
            stored: set[bytes] = set()
            for rollout in rollouts:
                spans = await fresh.query_spans(rollout.rollout_id)
                ids = [span.span_id for span in spans]
                assert len(ids) == len(set(ids)), "a resent span was stored twice"
                stored.update(ids)
            missing = acked - stored
            assert not missing, f"{len(missing)} acknowledged spans were lost"
            assert (await fresh.query_rollouts()).total == 40
            assert {r.rollout_id for r in await fresh.query_rollouts(status_in=["queuing"])} == {
                r.rollout_id for r in queued
            }
    finally:
        server.stop()


async def test_embedded_store_reopens_with_data_and_watchdog(tmp_path: Path) -> None:
    path = tmp_path / "embedded"
    store = LmdbStore(path)
    config = RolloutConfig(timeout_seconds=0.5, max_attempts=2, retry_condition=["timeout"])
    rollout = await store.enqueue_rollout({"q": 1}, config=config)
    claimed = await store.dequeue_rollout(worker_id="w")
    assert claimed is not None
    await store.add_span(new_span("a", rollout_id=rollout.rollout_id, attempt_id=claimed.attempt.attempt_id))  # type: ignore[union-attr]
    await store.close()  # well before the attempt's deadline

    reopened = LmdbStore(path)
    try:
        assert len(await reopened.query_spans(rollout.rollout_id)) == 1
        # The re-armed watchdog times the attempt out on schedule and the retry is claimable.
        retry = await reopened.dequeue_rollout(worker_id="w", wait=10)
        assert retry is not None and retry.attempt is not None and retry.attempt.sequence_id == 2
        first = (await reopened.query_attempts(rollout.rollout_id))[0]
        assert first.status == AttemptStatus.TIMEOUT
        current = await reopened.get_rollout(rollout.rollout_id)
        assert current is not None and current.status == RolloutStatus.PREPARING
    finally:
        await reopened.close()


async def test_map_grows_when_full(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "small", map_size=256 * 1024)
    try:
        rollout = await store.start_rollout("x")
        attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
        for chunk in range(10):
            spans = [
                new_span(
                    f"{chunk}-{i}", rollout_id=rollout.rollout_id, attempt_id=attempt_id, attributes={"pad": "z" * 4000}
                )
                for i in range(100)
            ]
            assert (await store.add_spans(spans)).accepted == 100
        stats = await store.stats()
        assert stats["map_size_bytes"] > 256 * 1024 and stats["spans"] == 1000
        assert len(await store.query_spans(rollout.rollout_id)) == 1000
    finally:
        await store.close()
