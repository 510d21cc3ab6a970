#!/usr/bin/env python3
"""Dispatch benchmark: how fast agl-server pushes queued work to many Work streams.

10,000 rollouts wait over 50 queues (random priorities 0-9, labels lang=py/go/ts) before 200
workers connect (capacity 1, each serving two queues with a lang=... selector, so that every
queue and language is served). Each worker reports every attempt SUCCEEDED at once; the
*dispatch latency* is the time from sending that final report (which frees the worker's slot)
to receiving the next assignment: the report's commit, the claim through the dispatch index
and its commit, and the push. Workers run in several processes so the clients do not share one
event loop.

``--plain`` runs the same load on one queue without labels or selectors, through calls that
older agl releases have too: run it with ``PYTHONPATH`` pointing at an older checkout for a
before/after figure. Prints a table and saves bench/results/dispatch_bench.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Report, percentile, saved_as

from agl_core.client import GrpcStore
from agl_server.process import ServerProcess

LANGS = ("py", "go", "ts")


def worker_route(index: int, queues: int, plain: bool) -> dict[str, Any]:
    if plain:
        return {}
    return {
        "queues": [f"q{index % queues}", f"q{(index + queues // 2) % queues}"],
        "label_selector": f"lang={LANGS[index % len(LANGS)]}",
    }


async def run_workers(address: str, indexes: list[int], queues: int, plain: bool, stop: Any) -> dict[str, Any]:
    import grpc

    from agl_core.proto import runner_pb2 as r
    from agl_core.proto import runner_pb2_grpc
    from agl_core.proto import types_pb2 as t

    latencies: list[float] = []
    first: list[float] = []
    channel = grpc.aio.insecure_channel(address)

    async def one(index: int) -> None:
        call = runner_pb2_grpc.RunnerServiceStub(channel).Work()
        hello = r.WorkerHello(worker_id=f"bench-{index}", capacity=1, **worker_route(index, queues, plain))
        hello.heartbeat_interval.FromSeconds(60)
        opened = time.perf_counter()
        await call.write(r.WorkRequest(hello=hello))
        # Reads go through a task: cancelling a pending read (a timeout) would cancel the call.
        inbox: asyncio.Queue[Any] = asyncio.Queue()

        async def read() -> None:
            while (item := await call.read()) is not grpc.aio.EOF:
                inbox.put_nowait(item)
            inbox.put_nowait(None)

        reader = asyncio.ensure_future(read())
        freed_at: float | None = None
        while not stop.is_set():
            try:
                response = await asyncio.wait_for(inbox.get(), 0.5)
            except TimeoutError:
                continue
            if response is None:
                return
            kind = response.WhichOneof("kind")
            if kind != "assignment":
                continue
            now = time.perf_counter()
            if freed_at is None:
                first.append(now - opened)
            else:
                latencies.append(now - freed_at)
            rollout = response.assignment.rollout
            report = r.AttemptReport(
                rollout_id=rollout.rollout_id,
                attempt_id=rollout.attempt.attempt_id,
                status=t.ATTEMPT_STATUS_SUCCEEDED,
            )
            freed_at = time.perf_counter()
            await call.write(r.WorkRequest(report=report))
        call.cancel()
        reader.cancel()

    await asyncio.gather(*(one(i) for i in indexes), return_exceptions=True)
    await channel.close()
    return {"latencies": latencies, "first": first}


def worker_process(address: str, indexes: list[int], queues: int, plain: bool, stop: Any, out: Any) -> None:
    out.put(asyncio.run(run_workers(address, indexes, queues, plain, stop)))


async def fill(store: GrpcStore, rollouts: int, queues: int, plain: bool) -> None:
    rng = random.Random(12)
    batch: list[dict[str, Any]] = []
    for i in range(rollouts):
        spec: dict[str, Any] = {"input": {"i": i}}
        if not plain:
            spec.update(queue=f"q{i % queues}", priority=rng.randint(0, 9), labels={"lang": rng.choice(LANGS)})
        batch.append(spec)
    for start in range(0, rollouts, 1000):
        await store.enqueue_rollouts(batch[start : start + 1000])


async def wait_drained(store: GrpcStore, rollouts: int, deadline: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < deadline:
        stats = await store.stats()
        if stats["rollouts_by_status"].get("succeeded", 0) >= rollouts:
            return time.perf_counter() - started
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the rollouts were not all done within {deadline:g}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=10_000)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--processes", type=int, default=4, help="client processes the workers are spread over")
    parser.add_argument("--plain", action="store_true", help="one queue, no labels or selectors (older releases too)")
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds the drain may take at most")
    parser.add_argument("--out", default=None, help="result file name under bench/results")
    args = parser.parse_args()
    shape = "1 queue, no selectors" if args.plain else f"{args.queues} queues, selectors lang=py/go/ts"
    report = Report(f"agl dispatch benchmark ({shape})")
    report.context.update(
        rollouts=args.rollouts,
        queues=1 if args.plain else args.queues,
        workers=args.workers,
        client_processes=args.processes,
        code=os.environ.get("PYTHONPATH", str(ROOT)),
        load_average_1m_at_start=os.getloadavg()[0],
    )
    with tempfile.TemporaryDirectory() as workdir:
        server = ServerProcess(os.path.join(workdir, "data"), log_path=os.path.join(workdir, "server.log")).start()
        try:
            store = GrpcStore(server.address)

            async def prepare() -> float:
                await store.wait_ready()
                started = time.perf_counter()
                await fill(store, args.rollouts, args.queues, args.plain)
                return time.perf_counter() - started

            loop = asyncio.new_event_loop()
            enqueue_s = loop.run_until_complete(prepare())
            print(f"queued {args.rollouts} rollouts in {enqueue_s:.1f}s", flush=True)
            context = mp.get_context("spawn")
            stop, out = context.Event(), context.Queue()
            groups = [list(range(p, args.workers, args.processes)) for p in range(args.processes)]
            processes = [
                context.Process(
                    target=worker_process, args=(server.address, g, args.queues, args.plain, stop, out), daemon=True
                )
                for g in groups
            ]
            for process in processes:
                process.start()
            drain_s = loop.run_until_complete(wait_drained(store, args.rollouts, args.deadline))
            stop.set()
            results = [out.get(timeout=60) for _ in processes]
            for process in processes:
                process.join(timeout=30)
            loop.run_until_complete(store.close())
            loop.close()
        finally:
            server.stop()
    latencies = [x for res in results for x in res["latencies"]]
    first = [x for res in results for x in res["first"]]
    report.context["load_average_1m_at_end"] = os.getloadavg()[0]
    report.add("rollouts enqueued before workers connect", args.rollouts, "rollouts", note=f"{enqueue_s:.1f}s")
    report.add("dispatches measured (report -> next push)", len(latencies), "pushes")
    report.add("dispatch latency p50", percentile(latencies, 50) * 1e3, "ms")
    report.add("dispatch latency p90", percentile(latencies, 90) * 1e3, "ms")
    report.add("dispatch latency p99", percentile(latencies, 99) * 1e3, "ms")
    report.add("dispatch latency max", max(latencies, default=float("nan")) * 1e3, "ms")
    report.add("first push after hello p50", percentile(first, 50) * 1e3, "ms")
    report.add(
        "drain rate, 200 workers" if args.workers == 200 else f"drain rate, {args.workers} workers",
        args.rollouts / drain_s,
        "rollouts/s",
        note=f"{drain_s:.1f}s from the first worker starting",
    )
    print()
    print(report.table())
    path = report.save(args.out or ("dispatch_bench_plain" if args.plain else "dispatch_bench"))
    print(f"\nsaved {saved_as(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
