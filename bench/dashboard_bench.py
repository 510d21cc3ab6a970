#!/usr/bin/env python3
"""How fast the dashboard's JSON API answers over a store with many finished rollouts, and how much
it holds up gRPC meanwhile (it runs on agl-server's event loop).

One agl-server (``--http-port 0``, nosync) gets N finished rollouts over two resources sets, each with
an LLM-call span (~1 KB) and a reward. Then, through the HTTP listener: the rollouts page (the
index answers it), an id search (a scan, off the loop), one rollout's page, the reward chart cold
(a span query per rollout) and warm (rewards remembered); and the latency of gRPC ``GetStats``
calls made while a cold reward chart is computed, against the same calls on an idle server.

Prints a table and writes ``bench/results/dashboard_bench.json``.

    python bench/dashboard_bench.py [--rollouts 2000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Report, llm_call_span, percentile

sys.path.insert(0, str(ROOT / "servers"))
import aiohttp

from agl_core.client import GrpcStore
from agl_core.runner.results import reward_span
from agl_server.process import ServerProcess

BATCH = 200


async def populate(store: GrpcStore, count: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, BATCH):
        size = min(BATCH, count - start)
        resources = "policy-a" if start < count // 2 else "policy-b"
        await store.enqueue_rollouts([{"input": {"n": start + i}, "resources_id": resources} for i in range(size)])
        claimed = await store.dequeue_rollouts(limit=size, worker_id="bench")
        spans = []
        for i, rollout in enumerate(claimed):
            assert rollout.attempt is not None
            spans.append(llm_call_span(rollout.rollout_id, rollout.attempt.attempt_id, start + i))
            spans.append(reward_span(rollout, float((start + i) % 3 == 0)))
        await store.add_spans(spans)
        for rollout in claimed:
            assert rollout.attempt is not None
            await store.update_attempt(rollout.rollout_id, rollout.attempt.attempt_id, status="succeeded")
            ids.append(rollout.rollout_id)
    return ids


async def timed(http: aiohttp.ClientSession, url: str) -> float:
    started = time.perf_counter()
    async with http.get(url) as response:
        await response.read()
        assert response.status == 200, (url, response.status)
    return (time.perf_counter() - started) * 1000


async def grpc_latencies(store: GrpcStore, until: asyncio.Event) -> list[float]:
    samples: list[float] = []
    while not until.is_set():
        started = time.perf_counter()
        await store.stats()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def main(rollouts: int, repeat: int) -> None:
    report = Report("dashboard API over a store of finished rollouts", context={"rollouts": rollouts})
    with tempfile.TemporaryDirectory() as scratch:
        server = ServerProcess(Path(scratch) / "data", args=["--http-port", "0", "--durability", "nosync"])
        with server:
            store = GrpcStore(server.address)
            try:
                started = time.perf_counter()
                ids = await populate(store, rollouts)
                print(f"populated {rollouts} rollouts in {time.perf_counter() - started:.1f}s", flush=True)
                base = server.http_url
                async with aiohttp.ClientSession() as http:
                    idle = asyncio.Event()
                    idle_task = asyncio.create_task(grpc_latencies(store, idle))
                    await asyncio.sleep(1.0)  # a baseline second of GetStats on an idle server
                    idle.set()
                    baseline = await idle_task

                    busy = asyncio.Event()
                    busy_task = asyncio.create_task(grpc_latencies(store, busy))
                    cold = await timed(http, f"{base}/api/rewards?limit=1000")
                    busy.set()
                    during = await busy_task
                    warm = [await timed(http, f"{base}/api/rewards?limit=1000") for _ in range(repeat)]
                    page = [await timed(http, f"{base}/api/rollouts?limit=50") for _ in range(repeat)]
                    search = [await timed(http, f"{base}/api/rollouts?q={ids[-1][-6:]}") for _ in range(repeat)]
                    one = [await timed(http, f"{base}/api/rollouts/{ids[i % len(ids)]}") for i in range(repeat)]
            finally:
                await store.close()
    report.add("GET /api/rollouts (page of 50) p50", percentile(page, 50), "ms")
    report.add("GET /api/rollouts?q=<id part> (scan) p50", percentile(search, 50), "ms")
    report.add("GET /api/rollouts/{id} p50", percentile(one, 50), "ms")
    report.add("GET /api/rewards?limit=1000 cold", cold, "ms", note="one span query per rollout")
    report.add("GET /api/rewards?limit=1000 warm p50", percentile(warm, 50), "ms", note="rewards remembered")
    report.add("gRPC GetStats, idle server, p50", percentile(baseline, 50), "ms")
    report.add("gRPC GetStats, idle server, max", max(baseline), "ms")
    report.add("gRPC GetStats during a cold reward chart, p50", percentile(during, 50), "ms")
    report.add("gRPC GetStats during a cold reward chart, max", max(during), "ms", note=f"{len(during)} calls")
    print()
    print(report.table())
    print(f"saved {report.save('dashboard_bench')}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.rollouts, args.repeat))
