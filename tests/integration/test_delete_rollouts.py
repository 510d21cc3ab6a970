"""DeleteRollouts against a real agl-server and real LMDB: by ids, by age, by status; everything of a
deleted rollout is gone from every query, watch, span query, dequeue and sub-database, and the
rollouts around it are untouched."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from agl_core import new_span
from agl_core.client import GrpcStore
from agl_core.errors import FailedPreconditionError, NotFoundError
from agl_core.proto import store_pb2 as s
from agl_core.proto import store_pb2_grpc
from agl_core.store import LightningStore, LmdbStore
from agl_core.store.lmdb.schema import DATABASES, U64
from agl_core.store.lmdb.span_chunks import REF, is_ref
from agl_core.types import Rollout
from agl_server.process import ServerProcess

SPANS = 30


async def _finished(store: LightningStore, name: str, status: str = "succeeded", spans: int = SPANS) -> Rollout:
    """A rollout that ran one attempt with ``spans`` spans and ended with ``status``."""
    rollout = await store.start_rollout(name, worker_id=f"w-{name}")
    attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
    # Spans over 700 bytes, so that they are stored packed in span chunks (span_chunks.py).
    await store.add_spans(
        [
            new_span(f"{name}-{i}", rollout_id=rollout.rollout_id, attempt_id=attempt_id, attributes={"p": "x" * 800})
            for i in range(spans)
        ]
    )
    if status == "cancelled":
        await store.update_rollout(rollout.rollout_id, status="cancelled")
    else:
        await store.update_attempt(rollout.rollout_id, attempt_id, status=status)
    final = await store.get_rollout(rollout.rollout_id)
    assert final is not None and final.status == status
    return final


async def _event_rollouts(store: LightningStore) -> set[str]:
    """Rollout ids of every event in the log, replayed from the start (WatchRollouts)."""
    seen: set[str] = set()
    last = (await store.stats())["last_event_id"]
    responses = store.backend.watch_rollouts(s.WatchRolloutsRequest(after_event_id=0))
    try:
        async for response in responses:
            seen.update(event.rollout_id for event in response.events)
            if response.last_event_id >= last:
                break
    finally:
        await responses.aclose()  # type: ignore[attr-defined]
    return seen


async def test_delete_by_ids_removes_the_rollout_everywhere_and_keeps_the_others(grpc_store: GrpcStore) -> None:
    store = grpc_store
    gone = await _finished(store, "gone")
    kept = await _finished(store, "kept", status="failed")
    kept_spans = [sp.SerializeToString() for sp in await store.query_spans(kept.rollout_id)]
    before = await store.stats()

    summary = await store.delete_rollouts([gone.rollout_id, "no-such-rollout"])
    assert (summary.deleted_rollouts, summary.deleted_attempts, summary.deleted_spans) == (1, 1, SPANS)
    assert summary.not_found_rollout_ids == ["no-such-rollout"]

    assert await store.get_rollout(gone.rollout_id) is None
    assert [r.rollout_id for r in await store.query_rollouts()] == [kept.rollout_id]
    with pytest.raises(NotFoundError):
        await store.query_spans(gone.rollout_id)
    assert gone.rollout_id not in await _event_rollouts(store)
    after = await store.stats()
    assert after["rollouts"] == before["rollouts"] - 1
    assert after["attempts"] == before["attempts"] - 1
    assert after["spans"] == before["spans"] - SPANS
    assert after["rollouts_by_status"]["succeeded"] == before["rollouts_by_status"]["succeeded"] - 1
    # The rollout left alone reads back byte for byte.
    assert [sp.SerializeToString() for sp in await store.query_spans(kept.rollout_id)] == kept_spans
    assert (await store.get_rollout(kept.rollout_id)) == kept

    # Deleting again finds nothing: a retry after a lost answer is harmless.
    again = await store.delete_rollouts([gone.rollout_id])
    assert again.deleted_rollouts == 0 and again.not_found_rollout_ids == [gone.rollout_id]


async def test_no_sub_database_keeps_an_entry_of_a_deleted_rollout(data_dir: Path) -> None:
    store = LmdbStore(data_dir)
    try:
        gone = [await _finished(store, f"gone-{i}") for i in range(3)]
        queued = await store.enqueue_rollout("queued")
        kept = await _finished(store, "kept")
        env, dbs = store.backend.env, store.backend.dbs
        with env.begin() as txn:
            nums = {
                r.rollout_id: int.from_bytes(txn.get(r.rollout_id.encode(), db=dbs.rollouts)[:8], "big")
                for r in [*gone, queued, kept]
            }
            before = {name: txn.stat(getattr(dbs, name))["entries"] for name in DATABASES}
        summary = await store.delete_rollouts([r.rollout_id for r in gone] + [queued.rollout_id], force=True)
        assert summary.deleted_rollouts == 4

        deleted_ids = {r.rollout_id for r in gone} | {queued.rollout_id}
        deleted_nums = {nums[rid] for rid in deleted_ids}
        with env.begin() as txn:
            after = {name: txn.stat(getattr(dbs, name))["entries"] for name in DATABASES}
            for name in ("rollouts", "rollout_inputs", "attempt_ids"):
                for key, value in txn.cursor(db=getattr(dbs, name)):
                    assert bytes(key).decode(errors="replace") not in deleted_ids, (name, key)
                    if name == "attempt_ids":
                        assert int.from_bytes(value[:8], "big") not in deleted_nums
            # Span chunks are numbered in write order, not by rollout: the ones left are exactly those
            # the spans left refer to.
            values = txn.cursor(db=dbs.spans).iternext(keys=False)
            referred = {REF.unpack(value)[1] for value in values if is_ref(value)}
            assert {U64.unpack(key)[0] for key in txn.cursor(db=dbs.span_chunks).iternext(values=False)} == referred
            assert referred
            for name in ("rollout_nums", "attempts", "spans", "span_id_log", "span_seqs", "rollout_events"):
                for key in txn.cursor(db=getattr(dbs, name)).iternext(values=False):
                    assert int.from_bytes(key[:8], "big") not in deleted_nums, (name, key)
            for name in ("status_index", "rollout_index"):
                offset = 1 if name == "status_index" else 2
                for key in txn.cursor(db=getattr(dbs, name)).iternext(values=False):
                    assert int.from_bytes(key[offset : offset + 8], "big") not in deleted_nums, (name, key)
            for raw in txn.cursor(db=dbs.events).iternext(keys=False):
                assert not any(rid.encode() in raw for rid in deleted_ids)
            assert txn.stat(dbs.queue)["entries"] == 0  # the queued rollout's entry went with it
            counts = sum(U64.unpack(v)[0] for v in txn.cursor(db=dbs.rollout_counts).iternext(keys=False))
            assert counts == 1 == after["rollouts"]
        assert after["spans"] == before["spans"] - 3 * SPANS
        assert after["attempts"] == before["attempts"] - 3
        # Nothing is left to dequeue.
        assert await store.dequeue_rollout(worker_id="w") is None
    finally:
        await store.close()


async def test_running_rollouts_need_force(grpc_store: GrpcStore) -> None:
    store = grpc_store
    running = await store.start_rollout("busy", worker_id="worker-1")
    attempt_id = running.attempt.attempt_id  # type: ignore[union-attr]
    await store.add_span(new_span("s", rollout_id=running.rollout_id, attempt_id=attempt_id))
    done = await _finished(store, "done")

    with pytest.raises(FailedPreconditionError, match="cancel them first"):
        await store.delete_rollouts([running.rollout_id, done.rollout_id])
    assert await store.get_rollout(done.rollout_id) is not None  # nothing was deleted

    # By status or age, running rollouts are counted and left alone.
    summary = await store.delete_rollouts(older_than=1e-3)
    assert summary.deleted_rollouts == 1 and summary.skipped_active == 1
    assert (await store.get_rollout(running.rollout_id)).status == "running"  # type: ignore[union-attr]

    forced = await store.delete_rollouts([running.rollout_id], force=True)
    assert forced.deleted_rollouts == 1
    with pytest.raises(NotFoundError):
        await store.update_attempt(running.rollout_id, attempt_id, status="succeeded")
    worker = await store.get_worker("worker-1")
    assert worker is not None and worker.current_rollout_id in (None, "")
    assert (await store.stats())["rollouts"] == 0


async def test_delete_by_age_and_by_status(grpc_store: GrpcStore) -> None:
    store = grpc_store
    old = [await _finished(store, f"old-{i}", spans=5) for i in range(2)]
    cut = time.time()
    # The store's clock: the next rollouts end after ``cut`` even if this client's clock is behind.
    new_cancelled = await _finished(store, "new-c", status="cancelled", spans=5)
    new_failed = await _finished(store, "new-f", status="failed", spans=5)
    assert all(r.end_time is not None and r.end_time < cut for r in old)

    dry = await store.delete_rollouts(ended_before=cut, dry_run=True)
    assert (dry.deleted_rollouts, dry.deleted_spans) == (2, 10)
    assert (await store.stats())["rollouts"] == 4

    by_age = await store.delete_rollouts(ended_before=cut)
    assert by_age.deleted_rollouts == 2
    remaining = {r.rollout_id for r in await store.query_rollouts()}
    assert remaining == {new_cancelled.rollout_id, new_failed.rollout_id}

    by_status = await store.delete_rollouts(status_in=["cancelled"])
    assert by_status.deleted_rollouts == 1
    assert {r.rollout_id for r in await store.query_rollouts()} == {new_failed.rollout_id}
    assert len(await store.query_spans(new_failed.rollout_id)) == 5


async def test_a_rollout_with_more_spans_than_one_write_takes(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollout whose spans exceed one write operation's budget is deleted over several writes."""
    from agl_core.store.lmdb import deletion

    monkeypatch.setattr(deletion, "DELETE_BUDGET", 7)
    store = LmdbStore(data_dir)
    try:
        big = await _finished(store, "big", spans=50)
        small = await _finished(store, "small", spans=3)
        writes = store.backend._writer.ops  # type: ignore[union-attr]
        summary = await store.delete_rollouts(status_in=["succeeded"])
        assert (summary.deleted_rollouts, summary.deleted_spans) == (2, 53)
        assert store.backend._writer.ops - writes >= 50 // 7  # type: ignore[union-attr]
        assert await store.get_rollout(big.rollout_id) is None and await store.get_rollout(small.rollout_id) is None
        assert (await store.stats())["spans"] == 0
        with store.backend.env.begin() as txn:
            assert txn.stat(store.backend.dbs.span_chunks)["entries"] == 0
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (s.DeleteRolloutsRequest(), "the selection is empty"),
        (s.DeleteRolloutsRequest(status_in=[42]), "not a rollout status"),
        (s.DeleteRolloutsRequest(status_in=[3]), "needs force"),
        (s.DeleteRolloutsRequest(rollout_ids=["a", ""]), "rollout_ids[1] is empty"),
        (s.DeleteRolloutsRequest(older_than={"seconds": -5}), "must be positive"),
        (s.DeleteRolloutsRequest(older_than={"seconds": 0}), "must be positive"),
        (s.DeleteRolloutsRequest(ended_before={"seconds": -1}), "ended_before"),
    ],
)
def test_bad_selections_are_invalid_argument_and_delete_nothing(
    server: ServerProcess, request_: s.DeleteRolloutsRequest, fragment: str
) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = store_pb2_grpc.LightningStoreServiceStub(channel)
        stub.StartRollout(s.StartRolloutRequest(rollout=s.RolloutSpec(input={"string_value": "x"})), timeout=30)
        with pytest.raises(grpc.RpcError) as info:
            stub.DeleteRollouts(request_, timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert fragment in info.value.details()
        assert stub.GetStats(s.GetStatsRequest(), timeout=30).rollouts == 1
