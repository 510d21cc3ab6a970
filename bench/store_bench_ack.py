"""store_bench's ack latency section: closed-loop span writers (Python, and with ``--go-client``
goroutines of agl-loadgen), each batch's ack timed, with the CPU each batch cost and, from the
server's /metrics, how busy the store's writer was. With ``--go-client`` the same Go writers then
run against bare handlers that parse and ack each batch without storing it (bench/ack_floors.py:
grpc.aio, grpc-go, Rust's tonic): the floor each transport alone sets on this machine; and against
the tonic handler putting every span into LMDB first, synced and not: the floor of a durable store."""

from __future__ import annotations

import argparse
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from ack_floors import Floor, FloorUnavailable, start_floor
from ack_timeline import read_samples, render, timeline
from common import RESULTS, Report, llm_call_span, percentile, saved_as
from cpu_split import spawning_on, split
from loadgen import build_loadgen, run_span_ack, write_span_batches
from store_bench_workloads import ack_latency, targets
from writer_metrics import WriterShare, writer_totals

from agl_core.client import GrpcStore
from agl_core.proto import store_pb2 as s
from agl_server.process import ServerProcess

SPANS_PER_BATCH = 10
TIMELINE_STEP_S = 0.5  # --go-latencies: the eight Go writers' window in steps this long


async def report_ack_latency(
    address: str,
    coords: list[tuple[str, str]],
    report: Report,
    quick: bool,
    server_pid: int | None = None,
    metrics_url: str | None = None,
) -> None:
    """Ack latency of closed-loop writers, the CPU each batch cost the server and this client, and
    (with ``metrics_url``, the server's /metrics) how busy the store's writer was and what each of
    its groups cost: with the writers closed-loop, the 8-writer latency is mostly the time the
    writer takes to serve the batches ahead."""
    print("ack latency", flush=True)
    rounds = 200 if quick else 1_500
    server = psutil.Process(server_pid) if server_pid is not None else None
    for writers, target in ((1, 2.0), (8, 5.0)):
        # This process alone (time.process_time): agl-server is one of its children.
        server_cpu, client_cpu = _cpu_seconds(server), time.process_time()
        totals = writer_totals(metrics_url) if metrics_url else None
        started = time.perf_counter()
        latencies = await ack_latency(address, coords, writers, rounds // writers if writers > 1 else rounds)
        wall = time.perf_counter() - started
        p50, p99 = percentile(latencies, 50) * 1e3, percentile(latencies, 99) * 1e3
        report.add(f"ack latency p50, {writers} writer(s), 10 spans/batch", p50, "ms")
        report.add(
            f"ack latency p99, {writers} writer(s), 10 spans/batch",
            p99,
            "ms",
            target=f"<= {target:g} ms",
            met=p99 <= target,
        )
        if server is not None:
            per_batch = (_cpu_seconds(server) - server_cpu) / len(latencies) * 1e6
            report.add(f"  server CPU per batch, {writers} writer(s)", per_batch, "us")
        per_batch = (time.process_time() - client_cpu) / len(latencies) * 1e6
        report.add(f"  client CPU per batch, {writers} writer(s)", per_batch, "us")
        if metrics_url and totals is not None:
            share = WriterShare.between(totals, writer_totals(metrics_url), wall)
            report.add(f"  store writer busy, {writers} writer(s)", share.busy * 100, "%")
            report.add(f"  operations per group commit, {writers} writer(s)", share.operations_per_group, "ops")
            report.add(f"  per group: running its operations, {writers} writer(s)", share.run_ms_per_group, "ms")
            report.add(f"  per group: commit (write + sync), {writers} writer(s)", share.commit_ms_per_group, "ms")


def _thread_cpu(process: psutil.Process | None) -> dict[str, tuple[float, float]]:
    """The server's CPU (user, system seconds) by kind of thread, from /proc: its main thread runs
    the event loop (gRPC's Python side and the store's calls), grpc's C core names its threads
    event_engine, and the rest are Python threads: the store's writer and grpc.aio's poller."""
    if process is None:
        return {}
    groups: dict[str, tuple[float, float]] = {}
    for thread in process.threads():
        if thread.id == process.pid:
            group = "event loop thread"
        else:
            try:
                name = Path(f"/proc/{process.pid}/task/{thread.id}/comm").read_text().strip()
            except OSError:  # the thread ended meanwhile
                continue
            group = "grpc event_engine threads" if name == "event_engine" else "other threads (store writer, poller)"
        user, system = groups.get(group, (0.0, 0.0))
        groups[group] = (user + thread.user_time, system + thread.system_time)
    return groups


def thread_cpu_spent(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]], group: str
) -> tuple[float, float]:
    """CPU seconds a group of :func:`_thread_cpu` spent between two readings: (in all, in the kernel)."""
    user, system = after.get(group, (0.0, 0.0))
    before_user, before_system = before.get(group, (0.0, 0.0))
    return user + system - before_user - before_system, system - before_system


# The Go writers share this machine's CPUs with the server: what they spend is not the server's.
CLIENT_NOTE = "the Go writers' process, start and warm-up included"


def _children_cpu_seconds() -> float:
    """CPU of this process's ended children: each agl-loadgen run is one, waited for at its end
    (the servers are children too, but none ends during a run)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_seconds(process: psutil.Process | None) -> float:
    """The CPU of ``process`` and of its live children (a floor may run as several processes)."""
    if process is None:
        return 0.0
    total = 0.0
    for member in (process, *process.children(recursive=True)):
        times = member.cpu_times()
        total += times.user + times.system
    return total


@dataclass(frozen=True)
class GoWritersRun:
    """One agl-loadgen span-ack run and the CPU it cost, per batch acked (warm-up included)."""

    result: dict[str, Any]  # agl-loadgen's figures
    batches: int  # batches acked, at least 1 (the divisor of the per-batch figures)
    server_us: float  # the server's CPU per batch
    client_us: float  # the Go writers' own


def run_go_writers(
    binary: Path,
    address: str,
    batches: Path,
    writers: int,
    quick: bool,
    server: psutil.Process | None,
    latencies: Path | None = None,
    encode: str = "each",
) -> GoWritersRun:
    server_cpu, client_cpu = _cpu_seconds(server), _children_cpu_seconds()
    result = run_span_ack(binary, address, batches, writers, 1.0 if quick else 5.0, latencies, encode)
    count = max(1, result["batches_total"])
    server_us = (_cpu_seconds(server) - server_cpu) / count * 1e6
    return GoWritersRun(result, count, server_us, (_children_cpu_seconds() - client_cpu) / count * 1e6)


def go_writers(coords: list[tuple[str, str]], workdir: str) -> tuple[Path, Path]:
    """agl-loadgen, built, and the file of span batches its span-ack writers send: the Python
    writers' spans, one 10-span batch per (rollout, attempt) of ``coords``."""
    batches = [
        s.IngestSpansRequest(
            spans=[llm_call_span(rollout_id, attempt_id, i) for i in range(SPANS_PER_BATCH)]
        ).SerializeToString()
        for rollout_id, attempt_id in coords
    ]
    return build_loadgen(), write_span_batches(Path(workdir) / "span_batches.json", batches)


def report_go_ack_latency(
    binary: Path,
    path: Path,
    address: str,
    report: Report,
    quick: bool,
    server_pid: int | None,
    latencies: Path | None = None,
    encode: str = "each",
) -> None:
    """The same closed-loop writers, spans and targets as goroutines of agl-loadgen (Go client): a
    client far cheaper than this process, so what remains is the server's latency (``encode``: how
    they serialize a batch, see loadgen.ENCODINGS). ``latencies``:
    where the eight writers' batches go, one line each, for their timeline (bench/ack_timeline.py)."""
    print("ack latency, Go client (agl-loadgen span-ack)", flush=True)
    server = psutil.Process(server_pid) if server_pid is not None else None
    for writers, target in ((1, 2.0), (8, 5.0)):
        threads = _thread_cpu(server)
        logged = latencies if writers == 8 else None
        run = run_go_writers(binary, address, path, writers, quick, server, logged, encode)
        result, batches_total = run.result, run.batches
        label = f"{writers} writer(s), 10 spans/batch, Go client"
        p99 = result["ack_p99_ms"]
        report.add(
            f"ack latency p50, {label}", result["ack_p50_ms"], "ms", note=f"{result['batches_per_s']:.0f} batches/s"
        )
        report.add(f"ack latency p99, {label}", p99, "ms", target=f"<= {target:g} ms", met=p99 <= target)
        if server is not None:
            report.add(f"  server CPU per batch, {label}", run.server_us, "us", note="warm-up included")
            after = _thread_cpu(server)
            for group in after:
                spent, kernel = (seconds / batches_total * 1e6 for seconds in thread_cpu_spent(threads, after, group))
                report.add(f"    of it {group}, {label}", spent, "us", note=f"{kernel:.0f} us in the kernel")
        report.add(f"  client CPU per batch (agl-loadgen), {label}", run.client_us, "us", note=CLIENT_NOTE)
        report_client_garbage(report, label, result)
        bad = result["bad_acks"]
        report.add(f"  batches not wholly stored, {label}", bad, "batches", target="0", met=bad == 0)
        if logged is not None:
            report_timeline(report, label, logged, result["batches_acked"])


def report_client_garbage(report: Report, label: str, result: dict[str, Any]) -> None:
    """What the Go writers allocated per batch and how often their garbage collector ran in the
    window: its marking takes CPU from the server on this machine and delays the writers' own
    receives, so a writer that makes much garbage shows in the latencies it measures."""
    if "alloc_bytes_per_batch" not in result:  # an agl-loadgen from before it reported them
        return
    report.add(f"  client allocated per batch (agl-loadgen), {label}", result["alloc_bytes_per_batch"], "bytes")
    report.add(f"  client garbage collections (agl-loadgen), {label}", result["gc_cycles"], "in the window")


def report_timeline(report: Report, label: str, path: Path, acked: int) -> None:
    """The window in half seconds: its slowest and fastest, to tell a steady p99 from stretches in
    which every writer was slow; the whole table printed."""
    samples = read_samples(path)
    if len(samples) != acked:
        raise SystemExit(f"{path}: {len(samples)} batches logged, {acked} acked in the window")
    steps = timeline(samples, TIMELINE_STEP_S)
    print(render(steps), flush=True)
    window_s = (samples[-1][1] - samples[0][1]) / 1e9
    whole = [step for step in steps if step.start_s + TIMELINE_STEP_S <= window_s]
    if not whole:
        return
    slowest = min(whole, key=lambda step: step.batches_per_s)
    fastest = max(whole, key=lambda step: step.batches_per_s)
    note = f"{path.name}: python bench/ack_timeline.py {saved_as(path)}"
    report.add(
        f"  batches per second, slowest half second, {label}",
        slowest.batches_per_s,
        "batches/s",
        note=f"from {slowest.start_s:.1f} s: ack p99 {slowest.p99_ms:.2f} ms",
    )
    report.add(
        f"  batches per second, fastest half second, {label}",
        fastest.batches_per_s,
        "batches/s",
        note=f"from {fastest.start_s:.1f} s: ack p99 {fastest.p99_ms:.2f} ms; {note}",
    )


def report_go_ack_floors(
    binary: Path,
    batches: Path,
    report: Report,
    quick: bool,
    workdir: str,
    floors: list[Floor],
    server_cpus: frozenset[int] | None = None,
    encode: str = "each",
) -> None:
    """The same Go writers and batches against each handler of ``floors``, which parses each batch
    whole (as agl-server's edge check does) and acks it, storing nothing or (``Floor.stored``) only
    its spans, in LMDB: what is left of agl's latency once the grpc.aio floor is taken off is agl's
    own, the compiled stacks' floors show what a front end in Go or Rust would leave for the store,
    and the storing ones what any durable store costs here."""
    for floor in floors:
        print(f"ack latency floor: the same Go writers against a {floor.label} handler", flush=True)
        try:
            process, address = start_floor(floor, workdir, server_cpus)
        except FloorUnavailable as exc:
            print(f"  skipped: {exc}", flush=True)
            report.context[f"floor skipped: {floor.name}"] = str(exc)
            continue
        acked = 0
        try:
            server = psutil.Process(process.pid)
            for writers in (1, 8):
                run = run_go_writers(binary, address, batches, writers, quick, server, encode=encode)
                result = run.result
                label = f"{writers} writer(s), 10 spans/batch, Go client, {floor.label}"
                acked += result["batches_total"]
                report.add(
                    f"floor: ack latency p50, {label}",
                    result["ack_p50_ms"],
                    "ms",
                    note=f"{result['batches_per_s']:.0f} batches/s",
                )
                report.add(f"floor: ack latency p99, {label}", result["ack_p99_ms"], "ms")
                report.add(f"  floor: server CPU per batch, {label}", run.server_us, "us", note="warm-up included")
                report.add(f"  floor: client CPU per batch, {label}", run.client_us, "us", note=CLIENT_NOTE)
                bad = result["bad_acks"]
                report.add(f"  floor: acks not for the whole batch, {label}", bad, "batches", target="0", met=bad == 0)
        finally:
            process.terminate()
            process.wait(timeout=30)
        if floor.stored is not None:
            # Every acked batch's spans must be in its store, or its latency is no floor.
            stored, wanted = floor.stored(floor.data_dir(workdir)), acked * SPANS_PER_BATCH
            report.add(
                f"  floor: spans stored, {floor.label}", stored, "spans", target=f">= {wanted}", met=stored >= wanted
            )


async def ack_only(args: argparse.Namespace, report: Report, workdir: str) -> None:
    """Only the ack latency section, on a fresh server (repeat it to see the spread)."""
    data, log = os.path.join(workdir, "data"), os.path.join(workdir, "server.log")
    server_cpus = split(report.context) if args.split_cpus else None
    with spawning_on(server_cpus):
        server = ServerProcess(data, args=["--http-port", "0"], log_path=log).start()
    with server:
        async with GrpcStore(server.address) as store:
            await store.wait_ready()
            coords = await targets(store, 64)
        pid = server.process.pid if server.process else None
        await report_ack_latency(server.address, coords, report, args.quick, pid, f"{server.http_url}/metrics")
        if not args.go_client:
            return
        binary, batches = go_writers(coords, workdir)
        report.context["go_writers_encode"] = args.go_encode
        latencies = RESULTS / f"{args.out}.latencies.txt" if args.go_latencies else None
        report_go_ack_latency(binary, batches, server.address, report, args.quick, pid, latencies, args.go_encode)
    report_go_ack_floors(binary, batches, report, args.quick, workdir, args.floors, server_cpus, args.go_encode)
