"""store_bench's client workloads: enqueue, dequeue, span ingestion and ack latency from this
process, and span writers, rollout-lifecycle workers and runners each in its own process (spawned,
so the clients do not share one interpreter), started together."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import llm_call_span

from agl_core.client import GrpcStore


async def enqueue_single(store: GrpcStore, count: int, concurrency: int) -> float:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            await store.enqueue_rollout({"i": i})

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return count / (time.perf_counter() - started)


async def enqueue_batched(store: GrpcStore, batches: int, size: int) -> float:
    started = time.perf_counter()
    for b in range(batches):
        await store.enqueue_rollouts([{"input": {"b": b, "i": i}} for i in range(size)])
    return batches * size / (time.perf_counter() - started)


async def dequeue_all(address: str, clients: int, expected: int) -> float:
    stores = [GrpcStore(address) for _ in range(clients)]
    claimed = 0

    async def drain(store: GrpcStore, worker: int) -> None:
        nonlocal claimed
        while await store.dequeue_rollout(worker_id=f"d{worker}") is not None:
            claimed += 1

    started = time.perf_counter()
    await asyncio.gather(*(drain(s, i) for i, s in enumerate(stores)))
    elapsed = time.perf_counter() - started
    for store in stores:
        await store.close()
    assert claimed == expected, (claimed, expected)
    return claimed / elapsed


async def targets(store: GrpcStore, count: int) -> list[tuple[str, str]]:
    out = []
    for i in range(count):
        rollout = await store.start_rollout({"target": i})
        out.append((rollout.rollout_id, rollout.attempt.attempt_id))  # type: ignore[union-attr]
    return out


async def ingest(store: GrpcStore, coords: list[tuple[str, str]], total: int, batch: int, inflight: int) -> float:
    """Acked spans/s: ``total`` spans in add_spans calls of ``batch``, ``inflight`` calls at once."""
    pool = [llm_call_span(r, a, i) for i, (r, a) in enumerate(coords * (batch // len(coords) + 1))][:batch]
    semaphore = asyncio.Semaphore(inflight)
    accepted = 0

    async def send() -> None:
        nonlocal accepted
        async with semaphore:
            for span in pool:
                span.span_id = os.urandom(8)  # fresh ids; the payload is serialized on submit
            result = await store.add_spans(pool)
            accepted += result.accepted

    started = time.perf_counter()
    await asyncio.gather(*(send() for _ in range(total // batch)))
    elapsed = time.perf_counter() - started
    assert accepted == total // batch * batch, accepted
    return accepted / elapsed


async def ack_latency(address: str, coords: list[tuple[str, str]], writers: int, rounds: int) -> list[float]:
    stores = [GrpcStore(address) for _ in range(writers)]
    latencies: list[float] = []

    async def writer(store: GrpcStore, w: int) -> None:
        rollout_id, attempt_id = coords[w % len(coords)]
        spans = [llm_call_span(rollout_id, attempt_id, i) for i in range(10)]
        await store.add_spans(spans[:1])  # open the stream first
        for _ in range(rounds):
            for span in spans:
                span.span_id = os.urandom(8)
            started = time.perf_counter()
            await store.add_spans(spans)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(writer(s, w) for w, s in enumerate(stores)))
    for store in stores:
        await store.close()
    return latencies


def ingest_process(address: str, coords: list[tuple[str, str]], total: int, start: Any, out: Any) -> None:
    async def run() -> None:
        async with GrpcStore(address) as store:
            await store.wait_ready()
            start.wait()
            begun = time.time()
            rate = await ingest(store, coords, total, 256, 8)
            out.put((begun, time.time(), rate))

    asyncio.run(run())


def lifecycle_process(address: str, worker: str, count: int, start: Any, out: Any) -> None:
    async def run() -> None:
        async with GrpcStore(address) as store:
            await store.wait_ready()
            template = [llm_call_span("r", "a", i) for i in range(10)]
            start.wait()
            begun = time.time()
            done = 0
            for i in range(count):
                await store.enqueue_rollout({"worker": worker, "i": i})
                rollout = await store.dequeue_rollout(worker_id=worker, wait=5)
                assert rollout is not None and rollout.attempt is not None
                for span in template:
                    span.rollout_id, span.attempt_id, span.span_id = (
                        rollout.rollout_id,
                        rollout.attempt.attempt_id,
                        os.urandom(8),
                    )
                await store.add_spans(template)
                await store.update_attempt(rollout.rollout_id, rollout.attempt.attempt_id, status="succeeded")
                spans = await store.query_spans(rollout.rollout_id)
                assert len(spans) == 10
                done += 1
            out.put((begun, time.time(), done))

    asyncio.run(run())


def _runner_process(address: str, worker: str, done: Any, out: Any) -> None:
    """An agl Runner on the Work stream whose agent returns 10 LLM-call spans per rollout."""
    from agl_core.litagent import rollout as rollout_agent
    from agl_core.runner import Runner, WorkStreamSource

    template = [llm_call_span("r", "a", i) for i in range(10)]

    @rollout_agent
    async def agent(task: Any, rollout: Any) -> list[Any]:
        spans = []
        for span in template:
            copy = type(span)()
            copy.CopyFrom(span)
            copy.rollout_id, copy.attempt_id, copy.span_id = (
                rollout.rollout_id,
                rollout.attempt.attempt_id,
                os.urandom(8),
            )
            spans.append(copy)
        return spans

    async def run() -> None:
        async with GrpcStore(address) as store:
            await store.wait_ready()
            stop = asyncio.Event()
            runner = Runner(agent, store=store, source=WorkStreamSource(address, worker_id=worker, capacity=2))
            task = asyncio.create_task(runner.run(stop))
            out.put(("ready", worker))
            await asyncio.to_thread(done.wait)  # runners take work as it arrives; this is the stop
            stop.set()
            await task

    asyncio.run(run())


async def lifecycle_through_runners(address: str, workers: int, rollouts: int, server_pid: int) -> tuple[float, float]:
    """Rollouts/s as agl runs them: the algorithm enqueues a batch and follows completions on the watch
    stream, reading each finished rollout's spans; Runner processes take work on the Work stream."""
    context = mp.get_context("spawn")
    done, out = context.Event(), context.Queue()
    processes = [context.Process(target=_runner_process, args=(address, f"run-{w}", done, out)) for w in range(workers)]
    for process in processes:
        process.start()
    for _ in processes:
        out.get(timeout=120)
    server = psutil.Process(server_pid)
    async with GrpcStore(address) as store:
        cpu_before = sum(server.cpu_times()[:2])
        started = time.perf_counter()
        async with store.watch_rollouts(status_in=["succeeded", "failed"]) as watch:
            ids = {r.rollout_id for r in await store.enqueue_rollouts([{"input": i} for i in range(rollouts)])}
            reads: list[asyncio.Task[Any]] = []
            async for event in watch:
                if event.rollout_id in ids:
                    ids.discard(event.rollout_id)
                    reads.append(asyncio.create_task(store.query_spans(event.rollout_id, "latest")))
                    if not ids:
                        break
            spans = await asyncio.gather(*reads)
        elapsed = time.perf_counter() - started
        server_cpu = sum(server.cpu_times()[:2]) - cpu_before
    assert all(len(s) == 10 for s in spans), "every rollout must come back with its 10 spans"
    done.set()
    for process in processes:
        process.join(60)
    return rollouts / elapsed, server_cpu / rollouts


def run_processes(target: Any, args_list: list[tuple[Any, ...]]) -> list[Any]:
    context = mp.get_context("spawn")
    start = context.Event()
    out = context.Queue()
    processes = [context.Process(target=target, args=(*args, start, out)) for args in args_list]
    for process in processes:
        process.start()
    time.sleep(1.0)  # let the workers connect; the measured window starts at the shared start event
    start.set()
    results = [out.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(60)
    return results


def aggregate_rate(results: list[tuple[float, float, float]], amount_of: Any) -> float:
    begun = min(r[0] for r in results)
    ended = max(r[1] for r in results)
    return sum(amount_of(r) for r in results) / (ended - begun)
