"""Routing over RunnerService.Work against a real agl-server: queues, label selectors,
namespaces and pinned resources, spoken message by message with raw gRPC."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from support.raw_worker import RawWorker

from agl_core.client import GrpcStore
from agl_core.proto import runner_pb2 as r
from agl_core.proto import types_pb2 as t
from agl_core.types import PromptTemplate, RolloutStatus
from agl_server.process import ServerProcess


async def serve(worker: RawWorker, taken: list[str], done: asyncio.Event) -> None:
    """Take assignments and report each SUCCEEDED until ``done`` is set."""
    while not done.is_set():
        try:
            assignment = await worker.assignment(within=0.2)
        except TimeoutError:
            continue
        taken.append(assignment.rollout.input.string_value)
        ack = await worker.report(assignment, t.ATTEMPT_STATUS_SUCCEEDED)
        assert ack.code == 0, ack.message


async def test_selectors_route_each_rollout_once_to_a_matching_worker(
    server: ServerProcess, client: GrpcStore, workers: list[RawWorker]
) -> None:
    selectors = {"go": "lang=go", "ts": "lang=ts", "py": "lang notin (go,ts)"}
    taken: dict[str, list[str]] = {name: [] for name in selectors}
    for name, selector in selectors.items():
        worker = RawWorker(server.address)
        workers.append(worker)
        await worker.hello(worker_id=f"w-{name}", capacity=1, label_selector=selector)
    ids = []
    for i in range(8):
        for lang in ("go", "ts", "py"):
            labels = {"lang": lang} if lang != "py" or i % 2 else {}
            ids.append((await client.enqueue_rollout(f"{lang}-{i}", labels=labels)).rollout_id)
    done = asyncio.Event()
    tasks = [asyncio.ensure_future(serve(w, taken[name], done)) for w, name in zip(workers, selectors, strict=True)]
    try:
        finished = await client.wait_for_rollouts(ids, timeout=60.0)
        assert len(finished) == len(ids)
    finally:
        done.set()
        await asyncio.gather(*tasks)
    for name, inputs in taken.items():
        assert inputs and all(i.startswith(f"{name}-") for i in inputs), (name, inputs)
    all_taken = [i for inputs in taken.values() for i in inputs]
    assert sorted(all_taken) == sorted(set(all_taken)) and len(all_taken) == len(ids)  # each exactly once
    assert all(r.status == RolloutStatus.SUCCEEDED for r in finished)


async def test_pushes_follow_priority_then_queue_order(
    server: ServerProcess, client: GrpcStore, workers: list[RawWorker]
) -> None:
    for name, priority in [("a", 0), ("b", 2), ("c", 0), ("d", 2), ("e", 1)]:
        await client.enqueue_rollout(name, queue="ordered", priority=priority)
    worker = RawWorker(server.address)
    workers.append(worker)
    await worker.hello(capacity=1, queues=["ordered"])
    order = []
    for _ in range(5):
        assignment = await worker.assignment()
        order.append(assignment.rollout.input.string_value)
        await worker.report(assignment, t.ATTEMPT_STATUS_SUCCEEDED)
    assert order == ["b", "d", "e", "a", "c"]


async def test_a_worker_serves_only_its_namespace_with_that_namespace_resources(
    server: ServerProcess, client: GrpcStore, workers: list[RawWorker]
) -> None:
    a = client.with_namespace("exp-a")
    await client.add_resources({"prompt": PromptTemplate(template="default {x}")}, resources_id="rs-default")
    # Enqueued before exp-a has resources: nothing is pinned, the worker gets exp-a's latest.
    unpinned = await a.enqueue_rollout("a-unpinned")
    assert unpinned.resources_id is None
    await a.add_resources({"prompt": PromptTemplate(template="A1 {x}")}, resources_id="rs-a1")
    pinned = await a.enqueue_rollout("a-pinned")
    await a.add_resources({"prompt": PromptTemplate(template="A2 {x}")}, resources_id="rs-a2")
    await client.enqueue_rollout("default-task")

    worker = RawWorker(server.address)
    workers.append(worker)
    await worker.hello(worker_id="w-a", capacity=1, namespace="exp-a")
    got = {}
    for _ in range(2):
        assignment = await worker.assignment()
        got[assignment.rollout.input.string_value] = assignment.resources.resources_id
        assert assignment.rollout.namespace == "exp-a"
        await worker.report(assignment, t.ATTEMPT_STATUS_SUCCEEDED)
    assert got == {"a-unpinned": "rs-a2", "a-pinned": "rs-a1"}
    assert pinned.resources_id == "rs-a1"
    with pytest.raises(TimeoutError):
        await worker.recv(within=0.5)  # the default namespace's task is not for this worker
    record = await a.get_worker("w-a")
    assert record is not None and record.namespace == "exp-a"
    assert [w.worker_id for w in await a.query_workers()] == ["w-a"]
    assert "w-a" not in {w.worker_id for w in await client.query_workers()}


@pytest.mark.parametrize(
    ("hello", "fragment"),
    [
        ({"label_selector": "lang in (go"}, "hello.label_selector 'lang in (go': a '(' is never closed"),
        ({"label_selector": "lang=go,"}, "empty requirement"),
        ({"namespace": "Exp_A"}, "hello.namespace 'Exp_A' is not a valid namespace name"),
        ({"queues": ["ok", "-bad"]}, "hello.queues[1] '-bad' is not a valid queue name"),
    ],
)
async def test_bad_hello_routes_end_the_stream_with_invalid_argument(
    server: ServerProcess, workers: list[RawWorker], hello: dict, fragment: str
) -> None:
    worker = RawWorker(server.address)
    workers.append(worker)
    await worker.send(hello=r.WorkerHello(capacity=1, **hello))
    assert await worker.ended_with() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in (await worker.call.details() or "")
