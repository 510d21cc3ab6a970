#!/usr/bin/env python3
"""How fast work reaches runners: the RunnerService Work stream against the DequeueRollout long
poll, in the same run, each on a fresh agl-server.

Runners are real runner processes (``agl_core.execution.runner_process``) serving an agent that
stamps the moment it starts into a span. Two scenarios per path:

- *sequential*: one rollout at a time into idle runners. Latency from the rollout's enqueue
  (``rollout.start_time``) and from its dequeue (``attempt.start_time``, when the server claimed
  it) to the agent starting, p50 and p99.
- *burst*: N rollouts enqueued at once; rollouts per second from the first enqueue until the
  last one is finished.

Prints a table and writes ``bench/results/runner_bench.json``.

    python bench/runner_bench.py [--sequential 200] [--burst 2000] [--runners 4] [--capacity 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agl_core.client import GrpcStore
from agl_core.execution import RunnerSpec
from agl_core.execution.runner_process import RunnerProcessConfig
from agl_core.execution.runner_process import main as runner_main
from agl_core.litagent import rollout
from agl_core.types import new_span, span_attributes
from agl_server.process import ServerProcess

RESULTS = Path(__file__).parent / "results" / "runner_bench.json"
STARTED = "bench.agent_started_ns"


@rollout
async def stamp(task: Any) -> list[Any]:
    """Records when the agent started; the reward span keeps the result shape of a real agent."""
    started = time.time_ns()
    return [new_span("bench.start", rollout_id="", attempt_id="", attributes={STARTED: started})]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


async def started_ns(store: GrpcStore, rollout_id: str) -> int:
    for span in await store.query_spans(rollout_id, "latest"):
        if span.name == "bench.start":
            return int(span_attributes(span)[STARTED])
    raise RuntimeError(f"rollout {rollout_id} has no bench.start span")


async def sequential(store: GrpcStore, count: int) -> dict[str, Any]:
    from_enqueue, from_dequeue = [], []
    for i in range(count):
        rollout_ = await store.enqueue_rollout(i)
        [done] = await store.wait_for_rollouts([rollout_.rollout_id], timeout=30)
        if done.status != "succeeded":
            raise RuntimeError(f"rollout {done.rollout_id} ended {done.status}")
        start = await started_ns(store, done.rollout_id)
        assert done.attempt is not None
        from_enqueue.append((start - done.start_time * 1e9) / 1e6)
        from_dequeue.append((start - done.attempt.start_time * 1e9) / 1e6)
    return {
        "rollouts": count,
        "enqueue_to_runner_ms": {
            "p50": percentile(from_enqueue, 50),
            "p99": percentile(from_enqueue, 99),
            "mean": statistics.fmean(from_enqueue),
        },
        "dequeue_to_runner_ms": {
            "p50": percentile(from_dequeue, 50),
            "p99": percentile(from_dequeue, 99),
            "mean": statistics.fmean(from_dequeue),
        },
    }


async def burst(store: GrpcStore, count: int) -> dict[str, Any]:
    begin = time.perf_counter()
    rollouts = await store.enqueue_rollouts([{"input": i} for i in range(count)])
    done = await store.wait_for_rollouts([r.rollout_id for r in rollouts], timeout=600)
    elapsed = time.perf_counter() - begin
    failed = sum(r.status != "succeeded" for r in done)
    if len(done) != count or failed:
        raise RuntimeError(f"burst: {len(done)} of {count} finished, {failed} not succeeded")
    return {"rollouts": count, "seconds": elapsed, "rollouts_per_s": count / elapsed}


async def measure(address: str, args: argparse.Namespace) -> dict[str, Any]:
    store = GrpcStore(address)
    try:
        await store.wait_ready()
        # Every runner has said hello (Work stream) or polled (long poll) before timing starts; the
        # store pushes no worker changes, so look until they are all there.
        while True:
            if (await store.query_workers()).total >= args.runners:
                break
            await asyncio.sleep(0.05)
        await sequential(store, 10)  # warm-up: connections, code paths
        return {
            "sequential": await sequential(store, args.sequential),
            "burst": await burst(store, args.burst),
        }
    finally:
        await store.close()


def run_path(path: str, args: argparse.Namespace) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="agl-runner-bench-") as data_dir:
        server = ServerProcess(Path(data_dir) / "store", args=["--durability", args.durability]).start()
        stop_read, stop = context.Pipe(duplex=False)
        spec = RunnerSpec(agent="runner_bench:stamp", tracer="agl_core.tracer.base:NullTracer", capacity=args.capacity)
        processes = [
            context.Process(
                target=runner_main,
                args=(
                    RunnerProcessConfig(
                        spec=spec,
                        server=server.address,
                        index=i,
                        log_level="WARNING",
                        poll_wait=None if path == "work-stream" else args.poll_wait,
                    ),
                    stop_read,
                ),
            )
            for i in range(args.runners)
        ]
        for process in processes:
            process.start()
        stop_read.close()
        try:
            return asyncio.run(measure(server.address, args))
        finally:
            stop.close()
            for process in processes:
                process.join(30)
                if process.is_alive():
                    process.kill()
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequential", type=int, default=200, help="rollouts run one at a time")
    parser.add_argument("--burst", type=int, default=2000, help="rollouts enqueued at once")
    parser.add_argument("--runners", type=int, default=4, help="runner processes")
    parser.add_argument("--capacity", type=int, default=4, help="attempts each runner runs at once")
    parser.add_argument("--poll-wait", type=float, default=5.0, help="long-poll wait of the dequeue path (s)")
    parser.add_argument("--durability", choices=("sync", "nosync"), default="sync", help="agl-server durability")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))  # runner processes import the agent from here
    results = {path: run_path(path, args) for path in ("work-stream", "long-poll")}

    header = (
        f"{'path':<12} {'enqueue→runner p50/p99 (ms)':>28} {'dequeue→runner p50/p99 (ms)':>28} {'burst rollouts/s':>17}"
    )
    print(
        f"\nrunner bench: {args.runners} runners x capacity {args.capacity}, {args.sequential} sequential, "
        f"{args.burst} burst, durability {args.durability}"
    )
    print(header)
    print("-" * len(header))
    for path, result in results.items():
        seq = result["sequential"]
        enq, deq = seq["enqueue_to_runner_ms"], seq["dequeue_to_runner_ms"]
        print(
            f"{path:<12} {enq['p50']:>17.2f} / {enq['p99']:>7.2f} {deq['p50']:>17.2f} / {deq['p99']:>7.2f} "
            f"{result['burst']['rollouts_per_s']:>17.0f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "bench": "runner_bench",
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                },
                "settings": vars(args),
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nsaved {RESULTS}")


if __name__ == "__main__":
    main()
