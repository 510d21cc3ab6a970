#!/usr/bin/env python3
"""Span growth benchmark: the ack latency of 10-span batches while one attempt grows very large.

agl-server recognises a resent span by its id through a Bloom filter per attempt in front of the
attempt's span-id log (agl_core/store/lmdb/span_ids.py). A filter is sized for the ids it holds, so
an attempt that keeps growing outgrows it again and again. This bench has closed-loop writers send
fresh 10-span batches into one attempt each until it holds ``--spans`` spans, times every ack, and
reports the latency by how many spans the attempt held then: a writer held up by work that grows
with the attempt shows in the max of the later bands. It also reports, from the server's /metrics,
how many fresh ids a filter could not rule out (false positives, each settled by reading the
attempt's whole log). It ends by resending a sample of the batches: each of their spans must come
back as a duplicate.

Prints a table and saves bench/results/<--out>.json. ``--quick``: a smoke test of the bench itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, llm_call_span, percentile, run_and_save
from writer_metrics import scrape

from agl_core.client import GrpcStore
from agl_server.process import ServerProcess

BATCH = 10
# Spans an attempt held when a batch was sent, in bands: (upper bound, label).
BANDS = ((10_000, "0-10k"), (50_000, "10k-50k"), (100_000, "50k-100k"), (10**12, "100k+"))


async def grow(address: str, writers: int, spans: int) -> tuple[list[tuple[int, float]], list[list[Any]]]:
    """Each writer fills its own attempt with ``spans`` spans; (spans held before, ack seconds) for
    every batch, and every writer's sent batches (the resend sample is drawn from them)."""
    timings: list[tuple[int, float]] = []
    sent: list[list[Any]] = []

    async def writer() -> None:
        async with GrpcStore(address) as store:
            rollout = await store.start_rollout({"bench": "span growth"})
            attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
            held = 0
            while held < spans:
                batch = [llm_call_span(rollout.rollout_id, attempt_id, held + i) for i in range(BATCH)]
                for span in batch:
                    span.span_id = os.urandom(8)
                started = time.perf_counter()
                result = await store.add_spans(batch)
                timings.append((held, time.perf_counter() - started))
                if result.accepted != BATCH:
                    raise SystemExit(f"a batch of fresh spans was not wholly accepted: {result}")
                if held % (BATCH * 97) == 0:
                    sent.append(batch)
                held += BATCH

    await asyncio.gather(*(writer() for _ in range(writers)))
    return timings, sent


async def resend(address: str, sample: list[list[Any]]) -> int:
    """Resend every batch of ``sample``; the number of spans not reported as duplicates."""
    missed = 0
    async with GrpcStore(address) as store:
        for batch in sample:
            result = await store.add_spans(batch)
            missed += len(batch) - result.duplicates
    return missed


def report_bands(report: Report, timings: list[tuple[int, float]]) -> None:
    lower = 0
    for upper, label in BANDS:
        acks = [seconds for held, seconds in timings if lower <= held < upper]
        lower = upper
        if not acks:
            continue
        report.add(f"ack p50, attempt holding {label} spans", percentile(acks, 50) * 1e3, "ms")
        report.add(f"ack p99, attempt holding {label} spans", percentile(acks, 99) * 1e3, "ms")
        report.add(f"ack max, attempt holding {label} spans", max(acks) * 1e3, "ms", note=f"{len(acks)} batches")


async def main_async(args: argparse.Namespace, report: Report, workdir: str) -> None:
    spans = 12_000 if args.quick else args.spans  # quick: into the second band
    server = ServerProcess(
        os.path.join(workdir, "data"), args=["--http-port", "0"], log_path=os.path.join(workdir, "server.log")
    ).start()
    metrics_url = f"{server.http_url}/metrics"
    with server:
        async with GrpcStore(server.address) as store:
            await store.wait_ready()
        started = time.perf_counter()
        timings, sent = await grow(server.address, args.writers, spans)
        elapsed = time.perf_counter() - started
        report.context.update({"writers": args.writers, "spans_per_attempt": spans, "batch": BATCH})
        report.add(
            "spans acked per second", len(timings) * BATCH / elapsed, "spans/s", note=f"{args.writers} writer(s)"
        )
        report_bands(report, timings)
        acks = [seconds for _, seconds in timings]
        report.add("ack p99, all batches", percentile(acks, 99) * 1e3, "ms")
        report.add("ack max, all batches", max(acks) * 1e3, "ms")
        checks = scrape(metrics_url)["agl_span_id_exact_checks_total"]
        report.add(
            "fresh span ids looked up in the log (false positives)",
            checks,
            "ids",
            note=f"{checks / (len(timings) * BATCH) * 1e6:.0f} per million fresh ids",
        )
        missed = await resend(server.address, sent)
        report.add(
            "resent spans not found as duplicates",
            missed,
            "spans",
            target="0",
            met=missed == 0,
            note=f"{sum(map(len, sent))} resent",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=150_000, help="spans each attempt grows to (default 150000)")
    parser.add_argument("--writers", type=int, default=1, help="closed-loop writers, one attempt each (default 1)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the benchmark itself")
    parser.add_argument("--out", default="span_growth_bench", help="result file name under bench/results")
    args = parser.parse_args()
    report = Report("agl span growth benchmark" + (" (quick)" if args.quick else ""))
    return run_and_save(report, args.out, lambda workdir: main_async(args, report, workdir))


if __name__ == "__main__":
    sys.exit(main())
