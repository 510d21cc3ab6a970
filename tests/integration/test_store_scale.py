"""Work that must not stall everyone (issue 11, item 8): indexed rollout queries, chunked big
enqueues, the shared ingest memory budget. Speed itself is measured in bench/store_scale_bench.py;
these tests pin the behaviour, with events and counters rather than timings.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc

from agl_core import LightningStore, LmdbStore, RolloutConfig, new_span
from agl_core.client import GrpcStore
from agl_core.proto import store_pb2 as s
from agl_core.proto import store_pb2_grpc
from agl_core.proto import types_pb2 as t
from agl_core.store.lmdb.schema import MetaKey, open_environment
from agl_server.process import ServerProcess

BOUND = 60.0  # generous: the machine may be loaded
MODES = (t.ROLLOUT_MODE_TRAIN, t.ROLLOUT_MODE_VAL, t.ROLLOUT_MODE_TEST)


async def _mixed_rollouts(store: LightningStore) -> None:
    """Rollouts in several statuses and modes, some of them moved between both after creation."""
    specs = [{"input": i, "mode": ("train", "val", "test")[i % 3]} for i in range(24)]
    await store.enqueue_rollouts(specs)
    for i in range(6):
        started = await store.start_rollout({"started": i}, mode="val" if i % 2 else "train")
        if i % 3 == 0:
            await store.update_attempt(started.rollout_id, "latest", status="succeeded")
        elif i % 3 == 1:
            await store.update_attempt(started.rollout_id, "latest", status="failed")
    claimed = await store.dequeue_rollouts(limit=5, worker_id="w")
    await store.update_rollout(claimed[0].rollout_id, mode="test")
    await store.update_rollout(claimed[1].rollout_id, status="cancelled")


def _expected(
    rollouts: list[t.Rollout], statuses: set[int] | None, mode: int, by_status: bool, desc: bool
) -> list[str]:
    kept = [
        (i, r)
        for i, r in enumerate(rollouts)
        if (statuses is None or r.status in statuses) and (not mode or r.mode == mode)
    ]
    kept.sort(key=(lambda p: (p[1].status, p[0])) if by_status else (lambda p: p[0]), reverse=desc)
    return [r.rollout_id for _, r in kept]


async def test_indexed_rollout_queries_agree_with_a_full_read(store: LightningStore) -> None:
    await _mixed_rollouts(store)
    # Every rollout in creation order, read without the index (a substring filter reads them all).
    full = s.QueryRolloutsRequest(rollout_id_contains="ro-", limit=1_000)
    created = list((await store.backend.query_rollouts(full)).rollouts)
    assert len(created) == 30
    cases = [
        (None, 0),
        ({t.ROLLOUT_STATUS_QUEUING}, 0),
        ({t.ROLLOUT_STATUS_QUEUING, t.ROLLOUT_STATUS_PREPARING}, t.ROLLOUT_MODE_TEST),
        ({t.ROLLOUT_STATUS_SUCCEEDED, t.ROLLOUT_STATUS_FAILED, t.ROLLOUT_STATUS_CANCELLED}, 0),
        (None, t.ROLLOUT_MODE_VAL),
        (set(), 0),  # an empty status set matches nothing
    ]
    for statuses, mode in cases:
        for sort_by in ("start_time", "status"):
            for order_ in (t.SORT_ORDER_ASC, t.SORT_ORDER_DESC):
                expected = _expected(created, statuses, mode, sort_by == "status", order_ == t.SORT_ORDER_DESC)
                request = s.QueryRolloutsRequest(mode=mode, sort_by=sort_by, order=order_, limit=4, offset=2)
                if statuses is not None:
                    request.status_filter.statuses.extend(sorted(statuses))
                    request.status_filter.SetInParent()
                response = await store.backend.query_rollouts(request)
                label = (statuses, mode, sort_by, order_)
                assert response.total == len(expected), label
                assert [r.rollout_id for r in response.rollouts] == expected[2:6], label
    stats = await store.stats()
    assert sum(stats["rollouts_by_status"].values()) == len(created)
    assert stats["rollouts_by_status"]["queuing"] == len(
        _expected(created, {t.ROLLOUT_STATUS_QUEUING}, 0, False, False)
    )


async def test_the_rollout_index_is_rebuilt_for_a_data_directory_without_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = LmdbStore(data)
    await _mixed_rollouts(store)
    before = await store.backend.query_rollouts(s.QueryRolloutsRequest(status_in=[t.ROLLOUT_STATUS_QUEUING]))
    await store.close()
    assert before.total > 0
    # As an agl without the index left it: no index entries, no counts, no marker.
    env, dbs = open_environment(os.fspath(data), map_size=1 << 30, sync=True)
    with env.begin(write=True) as txn:
        txn.drop(dbs.rollout_index, delete=False)
        txn.drop(dbs.rollout_counts, delete=False)
        txn.delete(MetaKey.ROLLOUT_INDEX_EVENT, db=dbs.meta)
    env.close()
    store = LmdbStore(data)
    try:
        after = await store.backend.query_rollouts(s.QueryRolloutsRequest(status_in=[t.ROLLOUT_STATUS_QUEUING]))
        assert after.total == before.total
        assert [r.rollout_id for r in after.rollouts] == [r.rollout_id for r in before.rollouts]
    finally:
        await store.close()


async def test_a_big_enqueue_keeps_its_order_and_lets_other_writers_in(grpc_store: GrpcStore) -> None:
    count = 3_000  # about a dozen write chunks
    request = s.EnqueueRolloutsRequest()
    for i in range(count):
        spec = request.rollouts.add(rollout_id=f"big-{i:05d}")
        spec.input.number_value = i
    finished = asyncio.Event()
    side: list[str] = []

    async def other_writer() -> None:
        while not finished.is_set():
            side.append((await grpc_store.start_rollout({"side": len(side)})).rollout_id)

    writer = asyncio.create_task(other_writer())
    await asyncio.sleep(0)
    response = await asyncio.wait_for(grpc_store.backend.enqueue_rollouts(request), BOUND)
    finished.set()
    await asyncio.wait_for(writer, BOUND)
    assert not response.errors
    assert [r.rollout_id for r in response.rollouts] == [f"big-{i:05d}" for i in range(count)]

    # The queue hands the batch out in the request's order.
    claimed: list[str] = []
    while True:
        got = await grpc_store.dequeue_rollouts(limit=1_000, worker_id="drain")
        if not got:
            break
        claimed.extend(r.rollout_id for r in got)
    assert claimed == [f"big-{i:05d}" for i in range(count)]

    # Creation order: some of the other client's rollouts were written between the batch's first and
    # last item, i.e. the batch did not hold the writer from start to end.
    ids: list[str] = []
    while True:
        page = await grpc_store.backend.query_rollouts(s.QueryRolloutsRequest(limit=1_000, offset=len(ids)))
        ids.extend(r.rollout_id for r in page.rollouts)
        if len(ids) >= page.total or not page.rollouts:
            break
    first_big, last_big = ids.index("big-00000"), ids.index(f"big-{count - 1:05d}")
    between = [i for i in ids[first_big:last_big] if not i.startswith("big-")]
    assert between, f"no other write landed inside the {count}-item enqueue ({len(side)} side writes in all)"


def _spans_batch(rollout_id: str, attempt_id: str, n: int) -> s.IngestSpansRequest:
    request = s.IngestSpansRequest()
    for _ in range(n):
        span = new_span("bulk", rollout_id=rollout_id, attempt_id=attempt_id, attributes={"blob": "x" * 1000})
        span.span_id = os.urandom(8)
        request.spans.append(span)
    return request


async def _ingest_gauges(address: str) -> dict[str, int]:
    async with grpc.aio.insecure_channel(address) as channel:
        call = store_pb2_grpc.LightningStoreServiceStub(channel).GetStats(s.GetStatsRequest())
        await call
        metadata = await call.trailing_metadata()
    return {key: int(value) for key, value in metadata if key.startswith("agl-ingest-")}


async def test_ingest_budget_is_shared_and_a_stream_ignoring_its_acks_blocks_no_one(tmp_path: Path) -> None:
    budget = 1 << 20
    with ServerProcess(
        tmp_path / "data", args=["--ingest-budget-mb", "1"], log_path=tmp_path / "server.log"
    ).start() as server:
        async with GrpcStore(server.address) as store:
            rollout = await store.start_rollout("spans")
            rid, aid = rollout.rollout_id, rollout.attempt.attempt_id  # type: ignore[union-attr]
            # Spans of a rollout that does not exist: each is answered with a rejection, so the acks are
            # large and the writes cheap.
            batch = _spans_batch("no-such-rollout", "latest", 250)  # ~270 KB: four fill the budget
            batch_bytes = sum(len(raw) for raw in (sp.SerializeToString() for sp in batch.spans))
            # Without BDP probing the clients' windows for acks stay small (64 KB a stream), so the
            # server's sends of acks stall once a few are unread, as with a slow or stuck client.
            small_windows = [("grpc.http2.bdp_probe", 0)]
            channels = [grpc.aio.insecure_channel(server.address, options=small_windows) for _ in range(3)]
            calls = [store_pb2_grpc.LightningStoreServiceStub(ch).IngestSpans() for ch in channels]
            sent = [0, 0, 0]

            async def never_read_acks(k: int) -> None:
                for _ in range(150):  # ~40 MB per stream: far past the budget and the ack window
                    for span in batch.spans:
                        span.span_id = os.urandom(8)
                    await calls[k].write(batch)
                    sent[k] += 1

            ignoring = [asyncio.create_task(never_read_acks(k)) for k in range(3)]
            try:
                # Another client's spans are acknowledged meanwhile.
                for _ in range(5):
                    result = await asyncio.wait_for(
                        store.add_spans([new_span("mine", rollout_id=rid, attempt_id=aid)]), BOUND
                    )
                    assert result.accepted == 1
                gauges = await _ingest_gauges(server.address)
                assert gauges["agl-ingest-budget-bytes"] == budget
                assert 0 < gauges["agl-ingest-peak-bytes"] <= budget + batch_bytes
                # The streams that ignore their acks are no longer read once their windows are full.
                assert not all(task.done() for task in ignoring)
                # What they sent is written, so they hold nothing of the budget while they stay open:
                # its bytes are given back when a batch is written, not when its ack is read.
                deadline = asyncio.get_running_loop().time() + BOUND
                while (held := await _ingest_gauges(server.address))["agl-ingest-held-bytes"]:
                    assert asyncio.get_running_loop().time() < deadline, held
                    await asyncio.sleep(0.05)
            finally:
                for task in ignoring:
                    task.cancel()
                for call in calls:
                    call.cancel()
                for ch in channels:
                    await ch.close()
            # With the streams gone, nothing of the budget stays held.
            deadline = asyncio.get_running_loop().time() + BOUND
            while (gauges := await _ingest_gauges(server.address))["agl-ingest-held-bytes"]:
                assert asyncio.get_running_loop().time() < deadline, gauges
                await asyncio.sleep(0.05)
            assert gauges["agl-ingest-peak-bytes"] <= budget + batch_bytes
            assert (await store.stats())["spans"] >= 5


async def test_spans_after_a_sequence_id_across_attempts_and_chunks(store: LightningStore) -> None:
    rollout = await store.start_rollout("long", config=RolloutConfig(max_attempts=2, retry_condition=["failed"]))
    first = rollout.attempt.attempt_id  # type: ignore[union-attr]
    rid = rollout.rollout_id
    await store.add_spans([new_span(f"a{i}", rollout_id=rid, attempt_id=first) for i in range(600)])
    await store.update_attempt(rid, first, status="failed")
    retried = await store.dequeue_rollout(worker_id="w")
    assert retried is not None and retried.rollout_id == rid
    second = retried.attempt.attempt_id  # type: ignore[union-attr]
    await store.add_spans([new_span(f"b{i}", rollout_id=rid, attempt_id=second) for i in range(600)])
    # Sequence ids run on across attempts (1-600, then 601-1200); the seek happens per attempt.
    tail = await store.query_spans(rid, after_sequence_id=550)
    assert [sp.sequence_id for sp in tail] == list(range(551, 1201))
    assert [sp.name for sp in tail[:2]] == ["a550", "a551"]
    later = await store.query_spans(rid, after_sequence_id=900)
    assert [sp.sequence_id for sp in later] == list(range(901, 1201))
    only_second = await store.query_spans(rid, second, after_sequence_id=550)
    assert [sp.sequence_id for sp in only_second] == list(range(601, 1201))
    limited = await store.query_spans(rid, after_sequence_id=595, limit=10)
    assert [sp.sequence_id for sp in limited] == list(range(596, 606))
    assert await store.query_spans(rid, after_sequence_id=1200) == []
