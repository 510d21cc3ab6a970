#!/usr/bin/env python3
"""Store scale benchmark: what one caller's big or slow work costs everyone else (issue 11, item 8).

With 100,000 rollouts (and 100,000 attempts that each hold a span) stored in agl-server, measures:
- one EnqueueRollouts of 50,000 items: how long it takes, and the write latency other callers see
  meanwhile (a second client keeps writing during it);
- QueryRollouts(limit=1) and a filtered query (status RUNNING, mode VAL, limit 10);
- a 10-span write to one attempt while 100,000 attempts have span-id filters cached;
- QuerySpans(after_sequence_id) near the end of a rollout holding 50,000 spans;
- ingest spans/s and ack p99, and small-read latency, while 8 clients loop QueryRollouts(limit=1);
- acknowledged ingestion spans/s of one stream on an idle store (the store bench's measure).

Prints a table and saves bench/results/<--out>.json, with the load average of the machine.
``--quick`` shrinks every size (a smoke test of the benchmark itself).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, llm_call_span, percentile, saved_as
from store_bench import ingest, targets

from agl_core.client import GrpcStore
from agl_core.errors import AglError
from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_server.process import ServerProcess


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


async def timed(call: Any, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        out.append(time.perf_counter() - started)
    return out


def spec(i: int) -> s.RolloutSpec:
    pb = s.RolloutSpec(mode=t.ROLLOUT_MODE_TRAIN if i % 2 else t.ROLLOUT_MODE_VAL)
    pb.input.struct_value.update({"i": i})
    return pb


async def big_enqueue(address: str, count: int) -> tuple[float, list[float], int]:
    """One EnqueueRollouts of ``count`` items while another client keeps writing (StartRollout)."""
    request = s.EnqueueRolloutsRequest(rollouts=[spec(i) for i in range(count)])
    latencies: list[float] = []
    done = asyncio.Event()
    async with GrpcStore(address) as big, GrpcStore(address) as other:
        await other.start_rollout({"warm": True})

        async def writer() -> None:
            while not done.is_set():
                started = time.perf_counter()
                await other.start_rollout({"side": len(latencies)})
                latencies.append(time.perf_counter() - started)

        side = asyncio.ensure_future(writer())
        await asyncio.sleep(0.2)
        before = len(latencies)
        started = time.perf_counter()
        response = await big.backend.enqueue_rollouts(request)
        elapsed = time.perf_counter() - started
        during = len(latencies) - before
        done.set()
        await side
        assert len(response.rollouts) == count and not response.errors
    return elapsed, latencies[before:], during


def _query_clients(address: str, clients: int, stop: Any, out: Any) -> None:
    async def run() -> None:
        stores = [GrpcStore(address) for _ in range(clients)]
        calls = failed = 0

        async def loop(store: GrpcStore) -> None:
            nonlocal calls, failed
            while not stop.is_set():
                try:
                    await store.backend.query_rollouts(s.QueryRolloutsRequest(limit=1))
                    calls += 1
                except AglError:  # e.g. past the client's deadline while queued behind the others
                    failed += 1

        await asyncio.gather(*(loop(st) for st in stores))
        for st in stores:
            await st.close()
        out.put((calls, failed))

    asyncio.run(run())


async def under_query_load(
    address: str, coords: list[tuple[str, str]], rollout_id: str, seconds: float
) -> dict[str, float]:
    """Ingest on one stream, 10-span acks and GetRollout, while 8 clients loop QueryRollouts(limit=1)."""
    ctx = mp.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    hammer = ctx.Process(target=_query_clients, args=(address, 8, stop, out))
    hammer.start()
    await asyncio.sleep(2.0)  # let the clients connect and start looping
    acks: list[float] = []
    reads: list[float] = []
    ingested = 0
    deadline = time.monotonic() + seconds
    async with GrpcStore(address) as bulk, GrpcStore(address) as acker, GrpcStore(address) as reader:
        pool = [llm_call_span(r, a, i) for i, (r, a) in enumerate(coords)][:64]

        async def bulk_ingest() -> None:
            nonlocal ingested
            while time.monotonic() < deadline:
                for span in pool:
                    span.span_id = os.urandom(8)
                # Not ``ingested += (await ...)``: that reads ``ingested`` before the await, so the
                # four concurrent loops would overwrite each other's counts.
                result = await bulk.add_spans(pool)
                ingested += result.accepted

        async def ack_writer() -> None:
            r, a = coords[0]
            spans = [llm_call_span(r, a, i) for i in range(10)]
            while time.monotonic() < deadline:
                for span in spans:
                    span.span_id = os.urandom(8)
                started = time.perf_counter()
                await acker.add_spans(spans)
                acks.append(time.perf_counter() - started)

        async def small_reads() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                await reader.get_rollout(rollout_id)
                reads.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(bulk_ingest() for _ in range(4)), ack_writer(), small_reads())
        elapsed = time.perf_counter() - started
    stop.set()
    queries, failed = out.get(timeout=300)
    hammer.join(timeout=60)
    return {
        "ingest": ingested / elapsed,
        "ack_p50": percentile(acks, 50),
        "ack_p99": percentile(acks, 99),
        "read_p50": percentile(reads, 50),
        "read_p99": percentile(reads, 99),
        "queries": queries / elapsed,
        "failed": failed,
    }


async def main_async(args: argparse.Namespace, report: Report, workdir: str) -> None:
    quick = args.quick
    rollouts = 10_000 if quick else 100_000
    big = rollouts // 2
    report.context["rollouts"] = rollouts
    report.context["load_average_start"] = _load()
    server = ServerProcess(os.path.join(workdir, "data"), log_path=os.path.join(workdir, "server.log")).start()
    try:
        address = server.address
        async with GrpcStore(address) as store:
            await store.wait_ready()
            print("acknowledged ingestion on an idle store", flush=True)
            coords = await targets(store, 64)
            rate = await ingest(store, coords, 30_000 if quick else 300_000, 64, 64)
            report.add(
                "ingest, 1 client stream (acked, durable)", rate, "spans/s", target=">= 50,000", met=rate >= 50_000
            )

            print(f"one EnqueueRollouts of {big:,} items, another client writing", flush=True)
            elapsed, side, during = await big_enqueue(address, big)
            report.add(f"EnqueueRollouts of {big:,} items", elapsed, "s")
            report.add("  other client's StartRollout during it, max", max(side, default=float("nan")) * 1e3, "ms")
            report.add("  other client's StartRollouts completed during it", during, "calls")

            print(f"filling to {rollouts:,} rollouts, each with an attempt and a span", flush=True)
            filled = big
            while filled < rollouts:
                n = min(1_000, rollouts - filled)
                await store.backend.enqueue_rollouts(
                    s.EnqueueRolloutsRequest(rollouts=[spec(filled + i) for i in range(n)])
                )
                filled += n
            attempts: list[tuple[str, str]] = []
            while True:
                got = await store.dequeue_rollouts(limit=1_000, worker_id="filler")
                if not got:
                    break
                attempts.extend((r.rollout_id, r.attempt.attempt_id) for r in got)  # type: ignore[union-attr]
            for i in range(0, len(attempts), 1_000):
                await store.add_spans([llm_call_span(r, a, i) for r, a in attempts[i : i + 1_000]])
            report.context["attempts_with_spans"] = len(attempts)
            stats = await store.stats()
            report.context["rollouts_stored"] = stats.get("rollouts")

            print("queries with 100k rollouts", flush=True)
            repeats = 5
            plain = await timed(lambda: store.backend.query_rollouts(s.QueryRolloutsRequest(limit=1)), repeats)
            report.add(f"QueryRollouts(limit=1), {rollouts:,} rollouts, p50", percentile(plain, 50) * 1e3, "ms")
            filtered_request = s.QueryRolloutsRequest(
                status_in=[t.ROLLOUT_STATUS_RUNNING], mode=t.ROLLOUT_MODE_VAL, limit=10
            )
            filtered = await timed(lambda: store.backend.query_rollouts(filtered_request), repeats)
            report.add("QueryRollouts(status RUNNING, mode VAL, limit=10), p50", percentile(filtered, 50) * 1e3, "ms")

            print("a 10-span write with 100k attempts cached", flush=True)
            r, a = attempts[len(attempts) // 2]
            spans = [llm_call_span(r, a, i) for i in range(10)]
            write_latencies = []
            for _ in range(10 if quick else 30):
                for span in spans:
                    span.span_id = os.urandom(8)
                started = time.perf_counter()
                await store.add_spans(spans)
                write_latencies.append(time.perf_counter() - started)
            report.add("10-span write, 100k attempts cached, p50", percentile(write_latencies, 50) * 1e3, "ms")
            report.add("10-span write, 100k attempts cached, p99", percentile(write_latencies, 99) * 1e3, "ms")

            print("QuerySpans(after_sequence_id) on a long rollout", flush=True)
            long_spans = 5_000 if quick else 50_000
            lr, la = coords[1]
            for i in range(0, long_spans, 1_000):
                batch = [llm_call_span(lr, la, i + k) for k in range(1_000)]
                for span in batch:
                    span.span_id = os.urandom(8)
                await store.add_spans(batch)
            last = (await store.next_sequence_ids(lr, 1)).start - 1
            tail = await timed(lambda: store.query_spans(lr, after_sequence_id=last - 10), repeats)
            got = await store.query_spans(lr, after_sequence_id=last - 10)
            assert len(got) == 10, len(got)
            report.add(
                f"QuerySpans(after_sequence_id) for the last 10 of {last:,} spans, p50",
                percentile(tail, 50) * 1e3,
                "ms",
            )

        print("8 clients looping QueryRollouts(limit=1)", flush=True)
        loaded = await under_query_load(address, coords, coords[2][0], 5.0 if quick else 15.0)
        report.add("  their QueryRollouts completed", loaded["queries"], "calls/s")
        report.add("  their QueryRollouts failed (deadline exceeded)", loaded["failed"], "calls")
        report.add("  ingest, 4 x 64-span batches in flight", loaded["ingest"], "spans/s")
        report.add("  10-span ack latency p50", loaded["ack_p50"] * 1e3, "ms")
        report.add("  10-span ack latency p99", loaded["ack_p99"] * 1e3, "ms")
        report.add("  GetRollout latency p50", loaded["read_p50"] * 1e3, "ms")
        report.add("  GetRollout latency p99", loaded["read_p99"] * 1e3, "ms")
    finally:
        report.context["load_average_end"] = _load()
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the benchmark itself")
    parser.add_argument("--out", default="store_scale_bench", help="result file name under bench/results")
    parser.add_argument("--label", default="", help="a note kept with the results (e.g. before/after)")
    parser.add_argument("--workdir", help="where data goes (default: a temp dir on the same disk as /tmp)")
    args = parser.parse_args()
    report = Report("agl store scale benchmark" + (" (quick)" if args.quick else ""))
    report.context["label"] = args.label
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        asyncio.run(main_async(args, report, workdir))
    print()
    context = report.context
    print(f"load average (1/5/15 min): start {context['load_average_start']}, end {context['load_average_end']}")
    print(report.table())
    path = report.save(args.out)
    print(f"\nsaved {saved_as(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
