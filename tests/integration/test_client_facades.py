"""The client from synchronous code and from other event loops, and its retries."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from agl_core import LmdbStore, SyncStore, ThreadSafeStore, new_span
from agl_core.client import GrpcStore
from agl_core.types import RolloutStatus
from agl_server.process import ServerProcess


@pytest.mark.parametrize("kind", ["lmdb", "grpc"])
def test_sync_store_from_plain_threads(kind: str, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start() if kind == "grpc" else None
    try:
        factory = (lambda: GrpcStore(server.address)) if server else (lambda: LmdbStore(tmp_path / "embedded"))
        with SyncStore(factory) as store:
            ids = [r.rollout_id for r in store.enqueue_rollouts([{"input": i} for i in range(40)])]

            def work(worker: str) -> None:
                while (rollout := store.dequeue_rollout(worker_id=worker)) is not None:
                    store.add_spans(
                        [new_span("s", rollout_id=rollout.rollout_id, attempt_id=rollout.attempt.attempt_id)]
                    )
                    store.update_attempt(rollout.rollout_id, "latest", status="succeeded")

            threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            done = store.wait_for_rollouts(ids, timeout=30)
            assert len(done) == 40 and all(r.status == RolloutStatus.SUCCEEDED for r in done)
            events = []
            for event in store.watch_rollouts(rollout_ids=ids[:1], after_event_id=0):
                events.append(event.new_status)
                if event.new_status.is_terminal:
                    break
            assert events[-1] == RolloutStatus.SUCCEEDED
            assert sum(1 for _ in store.iter_spans(ids[0])) == 1
    finally:
        if server:
            server.stop()


async def test_thread_safe_store_serves_other_event_loops(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "s")
    await store.start_rollout("warm-up")  # binds the store to this loop
    shared = ThreadSafeStore(store)
    results: list[str] = []

    def other_loop() -> None:
        async def run() -> None:
            rollout = await shared.enqueue_rollout({"from": "thread"})
            async with asyncio.timeout(10):
                async for event in shared.watch_rollouts(rollout_ids=[rollout.rollout_id], after_event_id=0):
                    results.append(event.new_status)
                    break

        asyncio.run(run())

    thread = threading.Thread(target=other_loop)
    thread.start()
    await asyncio.to_thread(thread.join, 30)
    assert results == [RolloutStatus.QUEUING]
    with pytest.raises(RuntimeError, match="bound to the event loop"):
        await asyncio.to_thread(asyncio.run, store.get_rollout("x"))
    await store.close()


async def test_unary_calls_ride_out_a_short_outage(server: ServerProcess) -> None:
    # The retry deadline bounds the outage ridden out; a restart on a loaded machine can take tens of
    # seconds (Python, gRPC and LMDB to import and open), longer than the default 60 s allows there.
    async with GrpcStore(server.address, retry_deadline=300) as store:
        rollout = await store.enqueue_rollout("before")
        server.kill()
        call = asyncio.create_task(store.get_rollout(rollout.rollout_id))
        await asyncio.to_thread(server.restart)
        again = await asyncio.wait_for(call, 300)
        assert again is not None and again.input == "before"
