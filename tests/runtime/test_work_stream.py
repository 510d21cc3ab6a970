"""RunnerService.Work against a real agl-server, spoken message by message with raw gRPC."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest
from store_waits import wait_status
from support.raw_worker import RawWorker
from support.waits import until

from agl_core.client import GrpcStore
from agl_core.proto import runner_pb2 as r
from agl_core.proto import types_pb2 as t
from agl_core.types import AttemptStatus, PromptTemplate, RolloutConfig, RolloutStatus, WorkerStatus
from agl_core.types.values import to_struct
from agl_server.process import ServerProcess

RETRY_UNRESPONSIVE = RolloutConfig(max_attempts=2, retry_condition=["unresponsive"])


def new_worker(server: ServerProcess, opened: list[RawWorker]) -> RawWorker:
    worker = RawWorker(server.address)
    opened.append(worker)
    return worker


async def test_assignments_carry_resolved_resources_and_respect_capacity(
    server: ServerProcess, client: GrpcStore, workers: list[RawWorker]
) -> None:
    pinned = await client.add_resources({"prompt": PromptTemplate(template="pinned {x}")}, resources_id="rs-pinned")
    await client.add_resources({"prompt": PromptTemplate(template="latest {x}")}, resources_id="rs-latest")
    first = await client.enqueue_rollout({"n": 1}, resources_id=pinned.resources_id)
    second = await client.enqueue_rollout({"n": 2})
    third = await client.enqueue_rollout({"n": 3}, resources_id="rs-missing")

    worker = new_worker(server, workers)
    welcome = await worker.hello(worker_id="w-cap", capacity=1)
    assert welcome.worker_id == "w-cap"
    a1 = await worker.assignment()
    assert a1.rollout.rollout_id == first.rollout_id
    assert a1.rollout.attempt.status == t.ATTEMPT_STATUS_PREPARING and a1.rollout.attempt.worker_id == "w-cap"
    assert a1.resources.resources_id == "rs-pinned"
    assert a1.resources.resources["prompt"].prompt_template.template == "pinned {x}"

    # Capacity 1: nothing more arrives until the attempt is finally reported.
    with pytest.raises(TimeoutError):
        await worker.recv(within=0.5)
    running = await worker.report(a1, t.ATTEMPT_STATUS_RUNNING)
    assert running.code == 0 and running.status == t.ATTEMPT_STATUS_RUNNING
    assert (await client.get_rollout(first.rollout_id)).status == RolloutStatus.RUNNING
    with pytest.raises(TimeoutError):
        await worker.recv(within=0.3)
    done = await worker.report(a1, t.ATTEMPT_STATUS_SUCCEEDED, metadata=to_struct({"reward": 1.0}))
    assert done.code == 0
    finished = await client.get_rollout(first.rollout_id)
    assert finished.status == RolloutStatus.SUCCEEDED and finished.attempt.metadata == {"reward": 1.0}

    a2 = await worker.assignment()
    assert a2.rollout.rollout_id == second.rollout_id
    assert a2.resources.resources_id == "rs-latest"  # no resources_id: the latest set
    await worker.report(a2, t.ATTEMPT_STATUS_SUCCEEDED)
    a3 = await worker.assignment()
    assert a3.rollout.rollout_id == third.rollout_id
    assert not a3.HasField("resources") and "rs-missing" in a3.resources_error
    await worker.report(a3, t.ATTEMPT_STATUS_FAILED)
    assert (await client.get_rollout(third.rollout_id)).status == RolloutStatus.FAILED


async def test_work_queued_later_is_pushed_without_asking(
    server: ServerProcess, client: GrpcStore, workers: list[RawWorker]
) -> None:
    worker = new_worker(server, workers)
    await worker.hello(capacity=2)
    with pytest.raises(TimeoutError):
        await worker.recv(within=0.3)
    rollout = await client.enqueue_rollout("late")
    assignment = await worker.assignment(within=5.0)
    assert assignment.rollout.rollout_id == rollout.rollout_id


async def test_broken_stream_marks_attempts_unresponsive_at_once_and_retries(
    server: ServerProcess, client: GrpcStore, workers: list[RawWorker]
) -> None:
    retried = await client.enqueue_rollout("retried", config=RETRY_UNRESPONSIVE)
    single = await client.enqueue_rollout(
        "single", config=RolloutConfig(max_attempts=1, retry_condition=["unresponsive"])
    )
    victim = new_worker(server, workers)
    await victim.hello(worker_id="victim", capacity=2)
    held = {(await victim.assignment()).rollout.rollout_id for _ in range(2)}
    assert held == {retried.rollout_id, single.rollout_id}
    assert (await client.get_worker("victim")).status == WorkerStatus.BUSY

    # The stream breaks. No unresponsive_seconds is configured, so nothing else would notice.
    victim.call.cancel()
    await wait_status(client, retried.rollout_id, RolloutStatus.REQUEUING)
    await wait_status(client, single.rollout_id, RolloutStatus.FAILED)
    attempts = await client.query_attempts(retried.rollout_id)
    assert [a.status for a in attempts] == [AttemptStatus.UNRESPONSIVE]
    worker_record = await client.get_worker("victim")
    assert worker_record.status == WorkerStatus.UNKNOWN and worker_record.heartbeat_stats["connected"] is False

    # The retry goes to the next worker, as attempt 2, and finishes the rollout.
    rescuer = new_worker(server, workers)
    await rescuer.hello(worker_id="rescuer", capacity=1)
    assignment = await rescuer.assignment()
    assert assignment.rollout.rollout_id == retried.rollout_id and assignment.rollout.attempt.sequence_id == 2
    assert (await rescuer.report(assignment, t.ATTEMPT_STATUS_SUCCEEDED)).code == 0
    final = await client.get_rollout(retried.rollout_id)
    assert final.status == RolloutStatus.SUCCEEDED
    assert [a.status for a in await client.query_attempts(retried.rollout_id)] == [
        AttemptStatus.UNRESPONSIVE,
        AttemptStatus.SUCCEEDED,
    ]


async def test_silent_worker_is_cut_off_after_three_heartbeat_intervals(
    server: ServerProcess, client: GrpcStore, workers: list[RawWorker]
) -> None:
    rollout = await client.enqueue_rollout("x", config=RETRY_UNRESPONSIVE)
    worker = new_worker(server, workers)
    hello = r.WorkerHello(worker_id="quiet", capacity=1)
    hello.heartbeat_interval.FromMilliseconds(200)
    await worker.call.write(r.WorkRequest(hello=hello))
    welcome = (await worker.recv()).welcome
    assert welcome.heartbeat_timeout.ToMilliseconds() == 600
    await worker.assignment()
    assert await worker.ended_with(within=5.0) == grpc.StatusCode.DEADLINE_EXCEEDED
    await wait_status(client, rollout.rollout_id, RolloutStatus.REQUEUING)


async def test_heartbeats_refresh_the_worker_record(
    server: ServerProcess, client: GrpcStore, workers: list[RawWorker]
) -> None:
    await client.enqueue_rollout("x")
    worker = new_worker(server, workers)
    await worker.hello(worker_id="beating", capacity=3, info=None)
    assignment = await worker.assignment()
    before = (await client.get_worker("beating")).last_heartbeat_time
    await worker.send(heartbeat=r.WorkerHeartbeat(stats=to_struct({"gpu_util": 0.5})))
    # The heartbeat is written apart from the reports, a moment later (it may wait for other
    # streams' heartbeats: runner_service/coalesce.py), so a report sent after it is not held up.
    await worker.report(assignment, t.ATTEMPT_STATUS_RUNNING)

    async def beaten() -> bool:
        return (await client.get_worker("beating")).last_heartbeat_time > before

    await until(beaten, timeout=30, what="the heartbeat written to the worker record")
    record = await client.get_worker("beating")
    assert record.heartbeat_stats["gpu_util"] == 0.5
    assert record.heartbeat_stats["capacity"] == 3 and record.heartbeat_stats["active_attempts"] == 1
    attempt = (await client.get_rollout(assignment.rollout.rollout_id)).attempt
    assert attempt is not None and attempt.last_heartbeat_time is not None
    listed = await client.query_workers(status_in=["busy"])
    assert [w.worker_id for w in listed] == ["beating"]


async def test_protocol_errors_get_precise_statuses(
    server: ServerProcess, client: GrpcStore, workers: list[RawWorker]
) -> None:
    no_hello = new_worker(server, workers)
    await no_hello.send(ready=r.WorkerReady(capacity=1))
    assert await no_hello.ended_with() == grpc.StatusCode.INVALID_ARGUMENT

    negative = new_worker(server, workers)
    await negative.send(hello=r.WorkerHello(capacity=-1))
    assert await negative.ended_with() == grpc.StatusCode.INVALID_ARGUMENT

    twice = new_worker(server, workers)
    await twice.hello(capacity=0)
    await twice.send(hello=r.WorkerHello(capacity=1))
    assert await twice.ended_with() == grpc.StatusCode.INVALID_ARGUMENT

    # Bad reports are answered, not fatal: the stream and the data stay intact.
    rollout = await client.enqueue_rollout("x")
    owner = new_worker(server, workers)
    await owner.hello(worker_id="owner", capacity=1)
    assignment = await owner.assignment()
    bad_status = await owner.report(assignment, t.ATTEMPT_STATUS_TIMEOUT)
    assert bad_status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and "timeout" in bad_status.message
    intruder = new_worker(server, workers)
    await intruder.hello(worker_id="intruder", capacity=0)
    stolen = await intruder.report(assignment, t.ATTEMPT_STATUS_SUCCEEDED)
    assert stolen.code == grpc.StatusCode.FAILED_PRECONDITION.value[0] and "owner" in stolen.message
    assert (await client.get_rollout(rollout.rollout_id)).status == RolloutStatus.PREPARING
    assert (await owner.report(assignment, t.ATTEMPT_STATUS_SUCCEEDED)).code == 0


async def test_reconnect_replaces_the_old_stream_and_keeps_listed_attempts(
    server: ServerProcess, client: GrpcStore, workers: list[RawWorker]
) -> None:
    kept = await client.enqueue_rollout("kept", config=RETRY_UNRESPONSIVE)
    dropped = await client.enqueue_rollout("dropped", config=RETRY_UNRESPONSIVE)
    old = new_worker(server, workers)
    await old.hello(worker_id="same", capacity=2)
    assignments = {a.rollout.rollout_id: a for a in [await old.assignment(), await old.assignment()]}

    new = new_worker(server, workers)
    keep = assignments[kept.rollout_id].rollout
    await new.hello(
        worker_id="same",
        capacity=2,
        active_attempts=[r.AttemptRef(rollout_id=keep.rollout_id, attempt_id=keep.attempt.attempt_id)],
    )
    assert await old.ended_with() == grpc.StatusCode.ABORTED
    await wait_status(client, dropped.rollout_id, RolloutStatus.REQUEUING)
    # The requeued rollout comes back to the new stream (it has room), as attempt 2.
    retry = await new.assignment()
    assert retry.rollout.rollout_id == dropped.rollout_id and retry.rollout.attempt.sequence_id == 2
    assert (await new.report(assignments[kept.rollout_id], t.ATTEMPT_STATUS_SUCCEEDED)).code == 0
    assert (await client.get_rollout(kept.rollout_id)).status == RolloutStatus.SUCCEEDED
    assert [a.status for a in await client.query_attempts(kept.rollout_id)] == [AttemptStatus.SUCCEEDED]
    assert (await client.get_worker("same")).status != WorkerStatus.UNKNOWN  # the new stream owns the record


async def test_after_a_restart_workers_that_do_not_come_back_lose_their_attempts(data_dir: Path) -> None:
    env = {**os.environ, "AGL_RUNNER_RECONNECT_GRACE": "0.5"}
    server = ServerProcess(data_dir, env=env, log_path=data_dir.parent / "server.log").start()
    store = GrpcStore(server.address)
    opened: list[RawWorker] = []
    try:
        orphaned = await store.enqueue_rollout("orphaned", config=RETRY_UNRESPONSIVE)
        worker = new_worker(server, opened)
        await worker.hello(worker_id="gone", capacity=1)
        await worker.assignment()
        server.kill()  # the server dies with the stream open; the worker never comes back
        await worker.close()
        server.restart()
        await wait_status(store, orphaned.rollout_id, RolloutStatus.REQUEUING)
        assert [a.status for a in await store.query_attempts(orphaned.rollout_id)] == [AttemptStatus.UNRESPONSIVE]
        record = await store.get_worker("gone")
        assert record.status == WorkerStatus.UNKNOWN and record.heartbeat_stats["connected"] is False
        assert "did not reconnect after the restart (gone)" in server.log_tail(50)
    finally:
        await store.close()
        server.stop()


async def test_runner_service_is_in_health_and_reflection(server: ServerProcess) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with grpc.aio.insecure_channel(server.address) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="agl.v1.RunnerService")
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        response = await call.read()
        await call.done_writing()
        names = {service.name for service in response.list_services_response.service}
        assert {"agl.v1.RunnerService", "agl.v1.LightningStoreService"} <= names
