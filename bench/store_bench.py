#!/usr/bin/env python3
"""Store benchmark: agl-server (LMDB, synced commits) against this machine's own limits.

Measures, in one run:
- the limits: raw LMDB puts (100 x 1 KB per synced transaction, keys shaped like span keys) and raw
  gRPC client streaming of the same payload (no parsing, no storage);
- enqueue (single and batched), dequeue (1 and 8 clients);
- acknowledged, durable span ingestion of ~1 KB LLM-call spans over one client stream and over
  8 concurrent streams (8 processes), with each figure as a fraction of the limits;
- ack latency p50/p99 with 1 and 8 closed-loop writers (``--ack-only --go-client``: the same
  writers again as goroutines of the Go load generator, a client far cheaper than this process, with
  the server's CPU per batch by thread and the writers' own; then against bare handlers that parse
  and ack each batch without storing it, in grpc.aio, grpc-go and Rust's tonic (``--floors``,
  bench/ack_floors.py): the floor each transport alone sets, and Rust's with every span put into
  LMDB, synced (the floor of any durable store) and not; ``--split-cpus`` puts the servers on
  CPU 0 and the writers on the other CPUs; ``--go-encode once`` has the Go writers send each
  batch serialized once, new span ids written into its bytes);
- the full rollout lifecycle (enqueue, dequeue, 10 spans, succeed, query spans) with 1 and 8
  worker processes;
- server memory (RSS and private) as 1M spans accumulate.

Prints a table and saves bench/results/store_bench.json. ``--quick`` shrinks every size (smoke test).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ack_floors import FLOORS, parse_floors
from common import Report, llm_call_span, percentile, saved_as
from loadgen import ENCODINGS
from store_bench_ack import ack_only, report_ack_latency
from store_bench_limits import raw_commit_latency, raw_grpc_stream, raw_lmdb_puts, raw_unary_rate, start_raw_server
from store_bench_workloads import (
    aggregate_rate,
    dequeue_all,
    enqueue_batched,
    enqueue_single,
    ingest,
    ingest_process,
    lifecycle_process,
    lifecycle_through_runners,
    run_processes,
    targets,
)

from agl_core.client import GrpcStore
from agl_server.process import ServerProcess

# --- memory ----------------------------------------------------------------------------------------


def server_memory(pid: int) -> tuple[float, float]:
    info = psutil.Process(pid).memory_full_info()
    return info.rss / 2**20, info.uss / 2**20


# --- main ------------------------------------------------------------------------------------------


class Scraper:
    """GET /metrics every ``interval`` seconds on a thread, as Prometheus would (each must succeed)."""

    def __init__(self, url: str, interval: float) -> None:
        self.url = url
        self.interval = interval
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with urllib.request.urlopen(self.url, timeout=30) as response:
                body = response.read()
            assert b"agl_spans_accepted_total" in body
            self.count += 1

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.count


async def ingest_only(args: argparse.Namespace, report: Report, workdir: str) -> None:
    """Only the span ingestion section, with the server's CPU time per span beside each rate (the
    rate swings with other work on a shared machine; the CPU cost much less). For comparing
    commits back to back: put the other checkout first on PYTHONPATH, the server inherits it."""
    spans_total = 40_000 if args.quick else 300_000
    server_args = ["--http-port", "0"] if args.http_listener else []
    server = ServerProcess(
        os.path.join(workdir, "data"), args=server_args, log_path=os.path.join(workdir, "server.log")
    ).start()
    assert server.process is not None
    process = psutil.Process(server.process.pid)
    scraper = Scraper(f"{server.http_url}/metrics", args.scrape_interval) if args.http_listener else None
    report.context["http_listener"] = bool(args.http_listener)
    try:
        async with GrpcStore(server.address) as store:
            await store.wait_ready()
            coords = await targets(store, 64)
            await ingest(store, coords, 64 * 64, 64, 64)  # warm-up
            cpu = sum(process.cpu_times()[:2])
            one_stream = await ingest(store, coords, spans_total, 64, 64)
            cpu = sum(process.cpu_times()[:2]) - cpu
        report.add(
            "ingest, 1 client stream (acked, durable)",
            one_stream,
            "spans/s",
            target=">= 50,000",
            met=one_stream >= 50_000,
            note=f"server CPU {cpu / spans_total * 1e6:.1f} us/span",
        )
        cpu = sum(process.cpu_times()[:2])
        results = run_processes(ingest_process, [(server.address, coords, spans_total // 8) for _ in range(8)])
        cpu = sum(process.cpu_times()[:2]) - cpu
        stored = spans_total // 8 // 256 * 256 * 8
        eight = aggregate_rate(results, lambda r: spans_total // 8 // 256 * 256)
        report.add(
            "ingest, 8 client streams (8 processes)",
            eight,
            "spans/s",
            note=f"server CPU {cpu / stored * 1e6:.1f} us/span",
        )
        async with GrpcStore(server.address) as store:
            stats = await store.stats()
        report.add("data file per stored span", stats["data_bytes"] / stats["spans"], "bytes")
        if scraper is not None:
            report.add(
                "metrics scrapes during the run", scraper.stop(), "scrapes", note=f"every {args.scrape_interval:g} s"
            )
    finally:
        if scraper is not None:
            scraper.stop()
        server.stop()


async def rollout_rates(args: argparse.Namespace, report: Report, workdir: str) -> None:
    """Enqueue and dequeue rates alone, as in the full run (for before/after figures of the queue)."""
    quick = args.quick
    server = ServerProcess(os.path.join(workdir, "data"), log_path=os.path.join(workdir, "server.log")).start()
    report.context["server"] = "agl-server, LMDB, --durability sync"
    try:
        async with GrpcStore(server.address) as store:
            await store.wait_ready()
            n = 500 if quick else 3_000
            report.add("enqueue, 1 per call, 1 in flight", await enqueue_single(store, n, 1), "rollouts/s")
            report.add("enqueue, 1 per call, 32 in flight", await enqueue_single(store, n, 32), "rollouts/s")
            batched = await enqueue_batched(store, 20 if quick else 200, 100)
            report.add("enqueue, 100 per call", batched, "rollouts/s", target=">= 20,000", met=batched >= 20_000)
            queued = 2 * n + (20 if quick else 200) * 100
            half = queued // 2
            started = time.perf_counter()
            for _ in range(half):
                assert await store.dequeue_rollout(worker_id="solo") is not None
            report.add("dequeue, 1 client", half / (time.perf_counter() - started), "rollouts/s")
            report.add("dequeue, 8 clients", await dequeue_all(server.address, 8, queued - half), "rollouts/s")
    finally:
        server.stop()


async def main_async(args: argparse.Namespace, report: Report, workdir: str) -> None:
    if args.ingest_only:
        await ingest_only(args, report, workdir)
        return
    if args.ack_only:
        await ack_only(args, report, workdir)
        return
    quick = args.quick
    payload = llm_call_span("ro-0123456789abcdef", "at-0123456789abcdef").SerializeToString()
    report.context["span_bytes"] = len(payload)
    print(f"span payload: {len(payload)} bytes", flush=True)
    if args.rollouts_only:
        await rollout_rates(args, report, workdir)
        return

    print("limits", flush=True)
    lmdb_rate = raw_lmdb_puts(workdir, 20_000 if quick else 200_000, payload)
    report.add("raw LMDB puts (100 x 1 KB per synced txn)", lmdb_rate, "puts/s")
    raw_server, raw_address = start_raw_server(workdir)
    try:
        raw_1 = await raw_grpc_stream(raw_address, payload, 1, 2_000 if quick else 20_000)
        raw_64 = await raw_grpc_stream(raw_address, payload, 64, 200 if quick else 2_000)
        raw_256 = await raw_grpc_stream(raw_address, payload, 256, 100 if quick else 1_000)
        raw_unary_1 = await raw_unary_rate(raw_address, 500 if quick else 3_000, 1)
        raw_unary_32 = await raw_unary_rate(raw_address, 1_000 if quick else 6_000, 32)
    finally:
        raw_server.terminate()
        raw_server.wait()
    report.add("raw gRPC client stream, 1 span/msg", raw_1, "spans/s")
    report.add("raw gRPC client stream, 64 spans/msg", raw_64, "spans/s")
    report.add("raw gRPC client stream, 256 spans/msg", raw_256, "spans/s")
    report.add("raw gRPC unary round trips, 1 in flight", raw_unary_1, "calls/s")
    report.add("raw gRPC unary round trips, 32 in flight", raw_unary_32, "calls/s")
    commits = raw_commit_latency(workdir, payload, 200 if quick else 1_000)
    report.add("raw synced LMDB commit of 10 spans, p50", percentile(commits, 50) * 1e3, "ms")
    report.add("raw synced LMDB commit of 10 spans, p99", percentile(commits, 99) * 1e3, "ms")

    server = ServerProcess(os.path.join(workdir, "data"), log_path=os.path.join(workdir, "server.log")).start()
    report.context["server"] = "agl-server, LMDB, --durability sync"
    try:
        async with GrpcStore(server.address) as store:
            await store.wait_ready()
            print("rollouts", flush=True)
            n = 500 if quick else 3_000
            report.add("enqueue, 1 per call, 1 in flight", await enqueue_single(store, n, 1), "rollouts/s")
            report.add("enqueue, 1 per call, 32 in flight", await enqueue_single(store, n, 32), "rollouts/s")
            batched = await enqueue_batched(store, 20 if quick else 200, 100)
            report.add("enqueue, 100 per call", batched, "rollouts/s", target=">= 20,000", met=batched >= 20_000)
            queued = 2 * n + (20 if quick else 200) * 100
            half = queued // 2
            # Dequeue half with one client, the rest with eight.
            one = GrpcStore(server.address)
            started = time.perf_counter()
            for _ in range(half):
                assert await one.dequeue_rollout(worker_id="solo") is not None
            report.add("dequeue, 1 client", half / (time.perf_counter() - started), "rollouts/s")
            await one.close()
            report.add("dequeue, 8 clients", await dequeue_all(server.address, 8, queued - half), "rollouts/s")

            print("span ingestion", flush=True)
            coords = await targets(store, 64)
            spans_total = 40_000 if quick else 300_000
            one_stream = await ingest(store, coords, spans_total, 64, 64)
            report.add(
                "ingest, 1 client stream (acked, durable)",
                one_stream,
                "spans/s",
                target=">= 50,000",
                met=one_stream >= 50_000,
            )
            fraction = one_stream / lmdb_rate
            report.add("  as a fraction of raw LMDB puts", fraction, "x", target=">= 0.45", met=fraction >= 0.45)
            report.add("  as a fraction of raw gRPC stream (64/msg)", one_stream / raw_64, "x")

        results = run_processes(ingest_process, [(server.address, coords, spans_total // 8) for _ in range(8)])
        eight = aggregate_rate(results, lambda r: spans_total // 8 // 256 * 256)
        report.add("ingest, 8 client streams (8 processes)", eight, "spans/s")
        report.add("  as a fraction of raw LMDB puts", eight / lmdb_rate, "x")

        await report_ack_latency(server.address, coords, report, quick, server.process.pid if server.process else None)

        print("rollout lifecycle", flush=True)
        per_worker = 100 if quick else 600
        for workers in (1, 8):
            count = per_worker if workers == 1 else per_worker * 2 // workers
            results = run_processes(
                lifecycle_process, [(server.address, f"life-{workers}-{w}", count) for w in range(workers)]
            )
            rate = aggregate_rate(results, lambda r: r[2])
            report.add(f"rollout lifecycle, 5 calls per rollout, {workers} worker process(es)", rate, "rollouts/s")
        assert server.process is not None
        for workers, target in ((1, None), (8, 1_000)):
            rollouts = 200 if quick or workers == 1 else 1_000
            rate, cpu = await lifecycle_through_runners(server.address, workers, rollouts, server.process.pid)
            report.add(
                f"rollout lifecycle via Work stream, {workers} runner process(es)",
                rate,
                "rollouts/s",
                target=f">= {target:,}" if target else "",
                met=(rate >= target) if target else None,
                note=f"batch enqueue, watch, 10 spans, reports, query spans; server CPU {cpu * 1e3:.2f} ms/rollout",
            )

        print("memory as spans accumulate", flush=True)
        assert server.process is not None
        pid = server.process.pid
        total = 20_000 if quick else args.rss_spans
        step = total // 4
        async with GrpcStore(server.address) as store:
            rss0, _ = server_memory(pid)
            stored_before = (await store.stats())["spans"]
            report.add(f"server RSS with {stored_before:,} spans stored", rss0, "MiB")
            for k in range(1, 5):
                await ingest(store, coords, step, 256, 16)
                rss, uss = server_memory(pid)
                stored = (await store.stats())["spans"]
                report.add(
                    f"server RSS with {stored:,} spans stored",
                    rss,
                    "MiB",
                    target="< 500 MiB" if k == 4 else "",
                    met=(rss < 500) if k == 4 else None,
                    note=f"private {uss:.0f} MiB",
                )
            stats = await store.stats()
            report.context["data_bytes_final"] = stats["data_bytes"]
            report.add("data file in use after the run", stats["data_bytes"] / 2**20, "MiB")
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the benchmark itself")
    parser.add_argument(
        "--ingest-only", action="store_true", help="only span ingestion, with the server's CPU time per span"
    )
    parser.add_argument(
        "--http-listener",
        action="store_true",
        help="with --ingest-only: run the server with --http-port (metrics on) and scrape /metrics meanwhile",
    )
    parser.add_argument("--scrape-interval", type=float, default=1.0, help="seconds between scrapes (default 1)")
    parser.add_argument(
        "--rollouts-only", action="store_true", help="only the enqueue and dequeue rates (the queue's hot paths)"
    )
    parser.add_argument(
        "--ack-only", action="store_true", help="only the ack latency of 1 and 8 closed-loop span writers"
    )
    parser.add_argument(
        "--go-client",
        action="store_true",
        help="with --ack-only: the same writers again as goroutines of agl-loadgen (needs go on PATH), then "
        "against bare handlers that store nothing (the transports' floors, see --floors)",
    )
    parser.add_argument(
        "--floors",
        type=parse_floors,
        default=",".join(FLOORS),
        help=f"with --go-client: the handlers to measure, separated by commas, or none (default: {','.join(FLOORS)}; "
        "the Rust ones are built with cargo and skipped without it; rust-tonic-lmdb puts every span into LMDB, "
        "synced, with none of agl's checks, and rust-tonic-lmdb-nosync the same unsynced)",
    )
    parser.add_argument(
        "--go-latencies",
        action="store_true",
        help="with --go-client: write every batch of the eight Go writers' window to bench/results/<out>.latencies.txt "
        "and print the window in half seconds (bench/ack_timeline.py): bunched slow acks show as slow steps",
    )
    parser.add_argument(
        "--go-encode",
        choices=ENCODINGS,
        default="each",
        help="with --go-client: the Go writers marshal each batch for every send (each, the default) or serialize "
        "it once and write new span ids into its bytes (once: less of the writers' CPU per batch)",
    )
    parser.add_argument(
        "--split-cpus",
        action="store_true",
        help="with --ack-only: agl-server and the floors on CPU 0, this process and the Go writers on the "
        "other CPUs (bench/cpu_split.py), so that the writers' CPU is not taken from the server's",
    )
    parser.add_argument("--rss-spans", type=int, default=1_000_000, help="spans to accumulate for the memory check")
    parser.add_argument("--out", default="store_bench", help="result file name under bench/results")
    parser.add_argument("--workdir", help="where data goes (default: a temp dir on the same disk as /tmp)")
    args = parser.parse_args()
    report = Report("agl store benchmark" + (" (quick)" if args.quick else ""))
    report.context["load_average_1m_at_start"] = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        report.context["workdir_fs"] = workdir
        asyncio.run(main_async(args, report, workdir))
    report.context["load_average_1m_at_end"] = os.getloadavg()[0]
    print()
    print(report.table())
    path = report.save(args.out)
    print(f"\nsaved {saved_as(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
