#!/usr/bin/env python3
"""Span growth benchmark: the ack latency of 10-span batches while one attempt grows very large.

agl-server recognises a resent span by its id through a Bloom filter per attempt in front of the
attempt's span-id log (agl_core/store/lmdb/span_ids.py). A filter is sized for the ids it holds, so
an attempt that keeps growing outgrows it again and again. This bench has closed-loop writers send
fresh 10-span batches into one attempt each until it holds ``--spans`` spans, times every ack, and
reports the latency by how many spans the attempt held then: a writer held up by work that grows
with the attempt shows in the max of the later bands. It also reports, from the server's /metrics,
how many fresh ids a filter could not rule out (false positives, each settled by reading the
attempt's whole log). It then resends a sample of the batches: each of their spans must come back
as a duplicate. Last, it restarts agl-server on the same data and times the first write to each
attempt (which reads the attempt's whole span-id log into a filter), and resends the sample again.

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
RESTARTS = 3  # restarts on the same data, each followed by a first write to every attempt
# Spans an attempt held when a batch was sent, in bands: (upper bound, label).
BANDS = ((10_000, "0-10k"), (50_000, "10k-50k"), (100_000, "50k-100k"), (10**12, "100k+"))


def fresh_batch(rollout_id: str, attempt_id: str, held: int) -> list[Any]:
    """``BATCH`` spans for an attempt that holds ``held``, each with a random id (so all are new)."""
    batch = [llm_call_span(rollout_id, attempt_id, held + i) for i in range(BATCH)]
    for span in batch:
        span.span_id = os.urandom(8)
    return batch


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
                batch = fresh_batch(rollout.rollout_id, attempt_id, held)
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


async def first_writes(address: str, attempts: list[tuple[str, str]], held: int) -> list[float]:
    """The ack seconds of one fresh batch into each of ``attempts``, one after the other: the first
    write to an attempt after a restart reads its whole span-id log into a filter."""
    acks = []
    async with GrpcStore(address) as store:
        await store.wait_ready()
        for rollout_id, attempt_id in attempts:
            batch = fresh_batch(rollout_id, attempt_id, held)
            started = time.perf_counter()
            result = await store.add_spans(batch)
            acks.append(time.perf_counter() - started)
            if result.accepted != BATCH:
                raise SystemExit(f"a batch of fresh spans was not wholly accepted after the restart: {result}")
    return acks


async def after_restart(report: Report, data: str, log: str, sent: list[list[Any]], spans: int) -> None:
    """Restart agl-server on the same data ``RESTARTS`` times: time each grown attempt's first write
    each time, then resend the sample again (the filters rebuilt from the logs must still know
    every span)."""
    attempts = sorted({(batch[0].rollout_id, batch[0].attempt_id) for batch in sent})
    acks: list[float] = []
    missed = 0
    for restart in range(RESTARTS):
        with ServerProcess(data, log_path=log).start() as server:
            acks += await first_writes(server.address, attempts, spans + restart * BATCH)
            if restart == RESTARTS - 1:
                missed = await resend(server.address, sent)
    label = f"ack of the first write after a restart, attempt holding {spans} spans"
    note = f"{len(acks)} first writes: {len(attempts)} attempt(s), {RESTARTS} restarts"
    report.add(f"{label}, median", percentile(acks, 50) * 1e3, "ms", note=note)
    report.add(f"{label}, max", max(acks) * 1e3, "ms")
    report_missed(report, "resent spans not found as duplicates after a restart", missed, sent)


def report_missed(report: Report, name: str, missed: int, sent: list[list[Any]]) -> None:
    """The resend check's row: every resent span must come back as a duplicate."""
    report.add(name, missed, "spans", target="0", met=missed == 0, note=f"{sum(map(len, sent))} resent")


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
        report_missed(report, "resent spans not found as duplicates", await resend(server.address, sent), sent)
    await after_restart(report, os.path.join(workdir, "data"), os.path.join(workdir, "server2.log"), sent, spans)


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
