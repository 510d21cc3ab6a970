#!/usr/bin/env python3
"""Span query benchmark: what an algorithm pays to read the spans of a finished batch of rollouts.

Against a real agl-server (LMDB in a temp dir, durable): ``--rollouts`` rollouts with ``--spans``
~1 KB LLM-call spans each, then their spans read back through the Python client three ways, each
``--repeats`` times (the best wall time is kept, as the machine may be shared; the server CPU is
summed over every repeat):

- one ``query_spans`` per rollout, one after the other (what the VERL daemon and APO did);
- the same calls all at once (``asyncio.gather``);
- ``query_spans_of_rollouts``: one QuerySpans call with ``rollout_ids`` (at most 1,000 per call).

Reports the wall time per batch and the server CPU per rollout read, and checks that every way
returns every span. Saves bench/results/<--out>.json; ``--quick`` shrinks the sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, llm_call_span, saved_as

from agl_core.client import GrpcStore
from agl_core.proto import trace_pb2
from agl_core.store.span_query import MAX_QUERY_ROLLOUTS
from agl_server.process import ServerProcess

Spans = dict[str, list[trace_pb2.Span]]


async def seed(store: GrpcStore, rollouts: int, spans: int) -> list[str]:
    ids = []
    for i in range(rollouts):
        rollout = await store.start_rollout({"task": i})
        attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
        await store.add_spans([llm_call_span(rollout.rollout_id, attempt_id, j) for j in range(spans)])
        await store.update_attempt(rollout.rollout_id, attempt_id, status="succeeded")
        ids.append(rollout.rollout_id)
    return ids


def ways(store: GrpcStore, ids: list[str]) -> dict[str, Callable[[], Awaitable[Spans]]]:
    async def one_by_one() -> Spans:
        return {rollout_id: await store.query_spans(rollout_id, "latest") for rollout_id in ids}

    async def concurrent() -> Spans:
        found = await asyncio.gather(*(store.query_spans(rollout_id, "latest") for rollout_id in ids))
        return dict(zip(ids, found, strict=True))

    async def one_call() -> Spans:
        out: Spans = {}
        for start in range(0, len(ids), MAX_QUERY_ROLLOUTS):
            out.update(await store.query_spans_of_rollouts(ids[start : start + MAX_QUERY_ROLLOUTS], "latest"))
        return out

    return {
        "query_spans per rollout, one at a time": one_by_one,
        "query_spans per rollout, all at once": concurrent,
        "query_spans_of_rollouts (rollout_ids)": one_call,
    }


async def run(args: argparse.Namespace, report: Report, workdir: str) -> None:
    with ServerProcess(os.path.join(workdir, "data"), log_path=os.path.join(workdir, "server.log")) as server:
        assert server.process is not None
        process = psutil.Process(server.process.pid)
        async with GrpcStore(server.address) as store:
            await store.wait_ready()
            ids = await seed(store, args.rollouts, args.spans)
            for label, read in ways(store, ids).items():
                best_wall, total_cpu = float("inf"), 0.0
                for _ in range(args.repeats):
                    cpu = sum(process.cpu_times()[:2])
                    started = time.perf_counter()
                    spans = await read()
                    wall = time.perf_counter() - started
                    cpu = sum(process.cpu_times()[:2]) - cpu
                    assert all(len(spans[r]) == args.spans for r in ids), label  # every span, every way
                    best_wall, total_cpu = min(best_wall, wall), total_cpu + cpu
                note = f"{args.rollouts} rollouts x {args.spans} spans, best of {args.repeats}"
                report.add(f"{label}: the batch", best_wall * 1e3, "ms", note=note)
                per_rollout = total_cpu * 1e3 / (len(ids) * args.repeats)  # over every repeat: CPU ticks are 10 ms
                report.add(f"  server CPU per rollout read ({label.split(' (')[0]})", per_rollout, "ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the benchmark itself")
    parser.add_argument("--rollouts", type=int, help="finished rollouts to read (default 1,000; quick 50)")
    parser.add_argument("--spans", type=int, default=10, help="spans per rollout")
    parser.add_argument("--repeats", type=int, help="reads of the batch per way (default 5; quick 2)")
    parser.add_argument("--out", help="result file name under bench/results (default span_query_bench[_quick])")
    args = parser.parse_args()
    args.rollouts = args.rollouts or (50 if args.quick else 1_000)
    args.repeats = args.repeats or (2 if args.quick else 5)
    report = Report("agl span query benchmark" + (" (quick)" if args.quick else ""))
    report.context.update(rollouts=args.rollouts, spans=args.spans, repeats=args.repeats, load_start=os.getloadavg())
    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(run(args, report, workdir))
    print()
    print(report.table())
    path = report.save(args.out or ("span_query_bench_quick" if args.quick else "span_query_bench"))
    print(f"\nsaved {saved_as(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
