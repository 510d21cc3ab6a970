"""Attempts claimed RUNNING (WorkerHello.start_on_assignment, DequeueRolloutRequest.running): a
worker that starts what it gets at once needs no RUNNING report, against a real agl-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest
from store_waits import wait_status
from support.raw_worker import RawWorker, idle_worker

from agl_core.client import GrpcStore
from agl_core.litagent import rollout
from agl_core.proto import store_pb2 as s
from agl_core.proto import store_pb2_grpc
from agl_core.proto import types_pb2 as t
from agl_core.runner import DequeueSource, Runner, WorkStreamSource
from agl_core.runner.work import ReportOutcome
from agl_core.store import LmdbStore
from agl_core.types import AttemptStatus, RolloutConfig, RolloutStatus, WorkerStatus, new_span
from agl_server.process import ServerProcess

TERMINAL = {RolloutStatus.SUCCEEDED, RolloutStatus.FAILED, RolloutStatus.CANCELLED}


async def history(store: Any, rollout_id: str, within: float = 15.0) -> list[RolloutStatus]:
    """The statuses the rollout went through, from its creation to a terminal one."""
    statuses: list[RolloutStatus] = []

    async def watch() -> None:
        async for event in store.watch_rollouts(rollout_ids=[rollout_id], after_event_id=0):
            statuses.append(event.new_status)
            if event.new_status in TERMINAL:
                return

    await asyncio.wait_for(watch(), within)
    return statuses


async def test_a_worker_that_starts_on_assignment_gets_running_attempts_on_every_claim_path(
    server: ServerProcess, client: GrpcStore, workers: list[RawWorker]
) -> None:
    queued_first = await client.enqueue_rollout("before hello")
    worker = RawWorker(server.address)
    workers.append(worker)
    await worker.hello(worker_id="w-start", capacity=1, start_on_assignment=True)

    # Claimed by the stream's own first claim (DequeueRollout inside the server).
    first = await worker.assignment()
    assert first.rollout.rollout_id == queued_first.rollout_id
    assert first.rollout.status == t.ROLLOUT_STATUS_RUNNING
    assert first.rollout.attempt.status == t.ATTEMPT_STATUS_RUNNING
    stored = await client.get_rollout(queued_first.rollout_id)
    assert stored.status == RolloutStatus.RUNNING and stored.attempt.status == AttemptStatus.RUNNING
    record = await client.get_worker("w-start")
    assert record.status == WorkerStatus.BUSY and record.current_attempt_id == first.rollout.attempt.attempt_id

    # A RUNNING report anyway is taken and changes nothing.
    again = await worker.report(first, t.ATTEMPT_STATUS_RUNNING)
    assert again.code == 0 and again.status == t.ATTEMPT_STATUS_RUNNING
    assert (await worker.report(first, t.ATTEMPT_STATUS_SUCCEEDED)).code == 0
    assert await history(client, queued_first.rollout_id) == [
        RolloutStatus.QUEUING,
        RolloutStatus.RUNNING,
        RolloutStatus.SUCCEEDED,
    ]

    # Claimed by the server's dispatcher for a waiting stream (many streams, one write).
    later = await client.enqueue_rollout("while waiting")
    second = await worker.assignment()
    assert second.rollout.rollout_id == later.rollout_id
    assert second.rollout.attempt.status == t.ATTEMPT_STATUS_RUNNING
    assert (await worker.report(second, t.ATTEMPT_STATUS_SUCCEEDED)).code == 0
    assert await history(client, later.rollout_id) == [
        RolloutStatus.QUEUING,
        RolloutStatus.RUNNING,
        RolloutStatus.SUCCEEDED,
    ]


async def test_streams_with_and_without_it_are_served_side_by_side(
    server: ServerProcess, client: GrpcStore, workers: list[RawWorker]
) -> None:
    plain = await idle_worker(server.address, client, "w-plain", workers)
    starting = RawWorker(server.address)
    workers.append(starting)
    await starting.hello(worker_id="w-starting", capacity=1, start_on_assignment=True)
    queued = await client.enqueue_rollouts([{"input": i} for i in range(2)])
    got = {"plain": await plain.assignment(), "starting": await starting.assignment()}
    assert {a.rollout.rollout_id for a in got.values()} == {q.rollout_id for q in queued}
    assert got["plain"].rollout.attempt.status == t.ATTEMPT_STATUS_PREPARING
    assert got["plain"].rollout.status == t.ROLLOUT_STATUS_PREPARING
    assert got["starting"].rollout.attempt.status == t.ATTEMPT_STATUS_RUNNING


async def test_a_broken_stream_gives_up_running_attempts_and_the_retry_runs(
    server: ServerProcess, client: GrpcStore, workers: list[RawWorker]
) -> None:
    retried = await client.enqueue_rollout(
        "retried", config=RolloutConfig(max_attempts=2, retry_condition=["unresponsive"])
    )
    victim = RawWorker(server.address)
    workers.append(victim)
    await victim.hello(worker_id="victim", capacity=1, start_on_assignment=True)
    assert (await victim.assignment()).rollout.attempt.status == t.ATTEMPT_STATUS_RUNNING
    victim.call.cancel()
    await wait_status(client, retried.rollout_id, RolloutStatus.REQUEUING)
    rescuer = RawWorker(server.address)
    workers.append(rescuer)
    await rescuer.hello(worker_id="rescuer", capacity=1, start_on_assignment=True)
    retry = await rescuer.assignment()
    assert retry.rollout.attempt.sequence_id == 2 and retry.rollout.attempt.status == t.ATTEMPT_STATUS_RUNNING
    assert (await rescuer.report(retry, t.ATTEMPT_STATUS_SUCCEEDED)).code == 0
    attempts = await client.query_attempts(retried.rollout_id)
    assert [a.status for a in attempts] == [AttemptStatus.UNRESPONSIVE, AttemptStatus.SUCCEEDED]


async def test_dequeue_rollout_running_over_grpc(server: ServerProcess, client: GrpcStore) -> None:
    queued = await client.enqueue_rollouts([{"input": i} for i in range(3)])
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = store_pb2_grpc.LightningStoreServiceStub(channel)
        running = await stub.DequeueRollout(s.DequeueRolloutRequest(worker_id="poller", limit=2, running=True))
        plain = await stub.DequeueRollout(s.DequeueRolloutRequest(worker_id="poller-2"))
    assert [x.rollout_id for x in running.rollouts] == [q.rollout_id for q in queued[:2]]
    assert {(x.status, x.attempt.status) for x in running.rollouts} == {
        (t.ROLLOUT_STATUS_RUNNING, t.ATTEMPT_STATUS_RUNNING)
    }
    assert plain.rollouts[0].attempt.status == t.ATTEMPT_STATUS_PREPARING
    for claimed in running.rollouts:
        stored = await client.get_rollout(claimed.rollout_id)
        assert stored.status == RolloutStatus.RUNNING and stored.attempt.status == AttemptStatus.RUNNING


async def test_claims_never_delivered_go_back_to_the_queue_but_touched_ones_stay(data_dir: Path) -> None:
    """The release of a claim whose worker left before getting it (agl-server's dispatcher, a
    DequeueRollout caller that went away): untouched RUNNING claims are undone like PREPARING ones;
    one with a span (the worker did get it) is left alone."""
    store = LmdbStore(data_dir)
    try:
        queued = await store.enqueue_rollouts([{"input": i} for i in range(3)])
        backend = store.backend
        running = (
            await backend.dequeue_rollout(s.DequeueRolloutRequest(worker_id="w", limit=2, running=True))
        ).rollouts
        preparing = (await backend.dequeue_rollout(s.DequeueRolloutRequest(worker_id="w2"))).rollouts
        touched = running[1]
        await store.add_span(new_span("started", rollout_id=touched.rollout_id, attempt_id=touched.attempt.attempt_id))
        await backend.release_claims([*running, *preparing])
        assert (await store.get_rollout(queued[0].rollout_id)).status == RolloutStatus.QUEUING
        assert list(await store.query_attempts(queued[0].rollout_id)) == []
        assert (await store.get_rollout(queued[2].rollout_id)).status == RolloutStatus.QUEUING
        kept = await store.get_rollout(touched.rollout_id)
        assert kept.status == RolloutStatus.RUNNING and kept.attempt.attempt_id == touched.attempt.attempt_id
        # Released rollouts are claimed again, in their queue order.
        again = (await backend.dequeue_rollout(s.DequeueRolloutRequest(worker_id="w3", limit=5))).rollouts
        assert [x.rollout_id for x in again] == [queued[0].rollout_id, queued[2].rollout_id]
    finally:
        await store.close()


class Recording:
    """Mixed into a real work source: notes the statuses the runner reports through it."""

    reported: list[AttemptStatus]

    async def report(
        self, rollout_id: str, attempt_id: str, status: AttemptStatus | str, metadata: Mapping[str, Any] | None = None
    ) -> ReportOutcome:
        self.reported.append(AttemptStatus(status))  # report_soon goes through here too
        return await super().report(rollout_id, attempt_id, status, metadata)  # type: ignore[misc]


class RecordingStream(Recording, WorkStreamSource):
    """The real Work-stream source, recording."""


class RecordingDequeue(Recording, DequeueSource):
    """The real claiming source, recording."""


@rollout
async def echo(task: Any) -> float:
    return 1.0


@pytest.fixture(params=["server", "embedded"])
async def served(request: pytest.FixtureRequest, data_dir: Path) -> AsyncIterator[tuple[str, Any, Any]]:
    """(kind, store, make a recording source(start_on_assignment)): a Work stream to a real
    agl-server, or the embedded LMDB store claimed directly."""
    if request.param == "server":
        process = ServerProcess(data_dir, log_path=data_dir.parent / "server.log").start()
        store: Any = GrpcStore(process.address)

        def stream(start: bool) -> Any:
            return RecordingStream(process.address, worker_id="py", capacity=1, start_on_assignment=start)

        yield "server", store, stream
        await store.close()
        process.stop()
    else:
        store = LmdbStore(data_dir)

        def dequeue(start: bool) -> Any:
            return RecordingDequeue(store, worker_id="py", capacity=1, start_on_assignment=start)

        yield "embedded", store, dequeue
        await store.close()


@pytest.mark.parametrize("start_on_assignment", [True, False])
async def test_the_runner_reports_running_only_for_attempts_that_arrive_preparing(
    served: tuple[str, Any, Any], start_on_assignment: bool
) -> None:
    _, store, make_source = served
    queued = await store.enqueue_rollouts([{"input": i} for i in range(3)])
    source = make_source(start_on_assignment)
    source.reported = []  # set before the runner starts: no report can be missed
    runner = Runner(echo, store=store, source=source)
    stop = asyncio.Event()
    serving = asyncio.create_task(runner.run(stop))
    done = await store.wait_for_rollouts([q.rollout_id for q in queued], timeout=30)
    stop.set()
    await asyncio.wait_for(serving, 30)
    assert [d.status for d in done] == [RolloutStatus.SUCCEEDED] * 3
    final = [AttemptStatus.SUCCEEDED] * 3
    if start_on_assignment:
        assert source.reported == final
        expected = [RolloutStatus.QUEUING, RolloutStatus.RUNNING, RolloutStatus.SUCCEEDED]
    else:
        assert sorted(source.reported) == sorted([AttemptStatus.RUNNING] * 3 + final)
        expected = [RolloutStatus.QUEUING, RolloutStatus.PREPARING, RolloutStatus.RUNNING, RolloutStatus.SUCCEEDED]
    for q in queued:
        assert await history(store, q.rollout_id) == expected
