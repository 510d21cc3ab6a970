#!/usr/bin/env python3
"""Fleet benchmark: agl-server under 1,000 lightweight workers and 50,000 tasks (issue 16).

Builds the Go load generator (clients/go/cmd/agl-loadgen: every worker a goroutine with its own
Work stream, speaking the protocol through the raw generated stubs, so the client costs little and
the server is what is measured), starts a real agl-server (LMDB in a temp dir, default durability:
fsync per commit) and runs, one after the other on that server:

- welcome: ``--workers`` streams opened at once (time until all are welcomed, per-stream
  hello->welcome latency); then, with all of them open, single rollouts enqueued at ``--rate`` for
  ``--dispatch-seconds``, each timed from just before its EnqueueRollouts call to its assignment's
  arrival at a worker (dispatch latency);
- large-batch: ``--tasks`` rollouts in EnqueueRollouts batches of ``--batch`` to ``--workers``
  workers running a no-op agent, with the exactly-once check (each rollout assigned once, every ack
  code 0, and through QueryRollouts each SUCCEEDED after exactly one attempt);
- lifecycle: for each of ``--lifecycle-workers``, a backlog kept queued for ``--lifecycle-seconds``:
  completed rollouts/s and the report-ack latency of RUNNING and final reports. Workers send
  RUNNING and the final report back to back (pipelined, as the runners do); ``--running-wait``
  makes them wait for RUNNING's ack first (the runners before RUNNING went without a round trip).
  Workers say ``start_on_assignment`` in hello, as the runners do: their attempts arrive RUNNING
  and get the final report alone; ``--assign-preparing`` leaves it out (attempts arrive PREPARING
  and are reported RUNNING, as before the field existed).
- held (not run by default): ``--held-workers`` workers of capacity ``--capacity`` whose agent works
  ``--hold`` seconds on each attempt (on average), with a heartbeat every ``--heartbeat`` seconds, and a backlog
  kept queued for ``--lifecycle-seconds``: a fleet whose workers hold many attempts, so that each
  heartbeat also refreshes every attempt its worker holds. Completed rollouts/s (at most
  workers x capacity / hold) and the server's CPU per rollout, heartbeats included.

Around each scenario it samples the server process's CPU time (its threads and any children) and
RSS. Prints a table and saves bench/results/<--out>.json, with the load average of the machine
(another job may share the CPUs: read the figures with it). ``--quick`` shrinks every size (a
smoke test of the benchmark itself; tests/bench/test_fleet_bench_quick.py runs it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, saved_as
from loadgen import build_loadgen, loadgen_command, result_of
from writer_metrics import scrape, writer_totals

from agl_server.process import ServerProcess


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


class ServerSampler:
    """CPU seconds and RSS of the server process (threads included, children added), sampled
    every 0.1 s in a thread while a scenario runs, so the peak RSS is seen."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _procs(self) -> list[psutil.Process]:
        return [self.process, *self.process.children(recursive=True)]

    def cpu(self) -> float:
        total = 0.0
        for proc in self._procs():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss(self) -> int:
        total = 0
        for proc in self._procs():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        self.peak_rss = max(self.peak_rss, total)
        return total

    def __enter__(self) -> ServerSampler:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.rss()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def run_scenario(
    binary: Path, address: str, sampler: ServerSampler, options: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """One agl-loadgen run; its JSON result with the server's CPU and RSS around it added."""
    command = loadgen_command(binary, address, options)
    print("$", " ".join(command), flush=True)
    rss_before, cpu_before = sampler.rss(), sampler.cpu()
    sampler.peak_rss = rss_before
    started = time.perf_counter()
    with sampler:
        # stderr (progress) goes straight through; stdout is the JSON result.
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"agl-loadgen failed (exit {done.returncode}): {' '.join(command)}")
    result = result_of(done.stdout)
    cpu = sampler.cpu() - cpu_before
    completed = max(1, int(result.get("completed") or 0))
    result["server"] = {
        "cpu_s": cpu,
        "cpu_ms_per_rollout": cpu * 1e3 / completed,
        "rss_before_mb": rss_before / 2**20,
        "rss_after_mb": sampler.rss() / 2**20,
        "rss_peak_mb": sampler.peak_rss / 2**20,
        "wall_s": wall,
        "load_after": _load(),
    }
    return result


def _ms(value: float | None) -> float:
    return float("nan") if value is None else value


def report_welcome(report: Report, r: dict[str, Any], rate: float) -> None:
    n = r["workers"]
    all_s = r["welcome_all_s"]
    note = "" if all_s is not None else f"{r['welcomed']} welcomed within {r['welcome_waited_s']:.0f} s"
    report.add(
        f"welcome: {n:,} streams opened at once, all welcomed after",
        float("nan") if all_s is None else all_s,
        "s",
        target="<= 5 s",
        met=all_s is not None and all_s <= 5,
        note=note,
    )
    report.add("  streams welcomed within 5 s", r["welcomed_within_5s"], "streams")
    report.add("  hello->welcome p50", _ms(r["welcome_p50_ms"]), "ms")
    report.add("  hello->welcome p99", _ms(r["welcome_p99_ms"]), "ms")
    label = f"dispatch latency, {n:,} streams open, {rate:g} enqueues/s"
    report.add(f"{label}, p50", _ms(r["dispatch_p50_ms"]), "ms", note=f"{r['dispatch_count']} rollouts")
    p99 = _ms(r["dispatch_p99_ms"])
    report.add(f"{label}, p99", p99, "ms", target="<= 10 ms", met=p99 <= 10)
    report.add(f"{label}, max", _ms(r["dispatch_max_ms"]), "ms", note=f"{r['dispatch_missing']} never assigned")
    report.add("  server CPU, whole scenario", r["server"]["cpu_s"], "s")
    report.add("  server RSS peak", r["server"]["rss_peak_mb"], "MiB")


def report_large_batch(report: Report, r: dict[str, Any]) -> None:
    label = f"large-batch: {r['tasks']:,} tasks, batch {r['batch']:,}, {r['workers']:,} workers"
    note = (
        "TIMED OUT: rate of those completed" if r["timed_out"] else f"{r['elapsed_s']:.1f} s, first enqueue to last ack"
    )
    report.add(label, r["rollouts_per_s"], "rollouts/s", note=note)
    report.add("  enqueue, all batches", r["enqueue_s"], "s")
    check = (
        f"{r['duplicates']} duplicates, {r['missing']} missing, {r['failed_acks']} failed acks, "
        f"{r['verified_succeeded_one_attempt']:,} verified SUCCEEDED/1 attempt, {r['verify_bad']} bad"
    )
    ok = bool(r["exactly_once"])
    report.add("  exactly-once check", 1.0 if ok else 0.0, "pass", target="pass", met=ok, note=check)
    report.add("  workers welcomed after", _ms(r["welcome_all_s"]), "s", note=f"{r['welcomed']} welcomed")
    report.add("  server CPU per rollout", r["server"]["cpu_ms_per_rollout"], "ms")
    report.add("  server RSS peak", r["server"]["rss_peak_mb"], "MiB")


def report_lifecycle(report: Report, r: dict[str, Any]) -> None:
    n = r["workers"]
    rate = r["rollouts_per_s"]
    # A worker of capacity 1 waits for two durable commits per rollout (its claim and the final
    # report; three with RUNNING, under --assign-preparing): a handful of workers is bound by those
    # round trips, not by the server. The
    # issue's 1,000 rollouts/s is the server's rate, so the target applies to fleets of 64 and more.
    # (The ack targets, 2 ms with one writer and 5 ms with 8, are IngestSpans acks:
    # bench/store_bench.py measures them; the report acks here are given for reference.)
    server_bound = n >= 64
    report.add(
        f"lifecycle, {n} workers, no-op agent",
        rate,
        "rollouts/s",
        target=">= 1,000" if server_bound else "",
        met=rate >= 1000 if server_bound else None,
        note="" if server_bound else "bound by each worker's round trips",
    )
    for kind in ("running", "final"):
        if not r.get(f"ack_{kind}_count"):
            continue  # no RUNNING reports: the attempts arrived RUNNING (start_on_assignment)
        p99 = _ms(r[f"ack_{kind}_p99_ms"])
        report.add(f"  report ack p99, {kind.upper()}", p99, "ms", note=f"p50 {_ms(r[f'ack_{kind}_p50_ms']):.2f} ms")
    report.add("  server CPU per rollout", r["server"]["cpu_ms_per_rollout"], "ms")
    report.add("  server RSS peak", r["server"]["rss_peak_mb"], "MiB")


def store_writes(metrics_url: str) -> dict[str, float]:
    """The store writer's running totals and the attempt-heartbeat counters, from /metrics."""
    samples = scrape(metrics_url)
    totals = writer_totals(metrics_url, samples)
    wanted = ("agl_attempt_heartbeats_total", "agl_attempt_heartbeat_writes_total")
    # A server without these counters (before agl-server coalesced attempt heartbeats) leaves them out.
    return {"groups": totals.groups, "operations": totals.operations, **{k: samples[k] for k in wanted if k in samples}}


def report_held(report: Report, r: dict[str, Any], args: argparse.Namespace) -> None:
    held = r["workers"] * args.capacity
    label = f"held: {r['workers']} workers x {args.capacity} attempts, {args.hold:g} s each"
    label += f", heartbeat {args.heartbeat:g} s"
    ceiling = held / args.hold
    report.add(label, r["rollouts_per_s"], "rollouts/s", note=f"at most {ceiling:,.0f}: {held:,} attempts held at once")
    if r.get("ack_final_count"):
        note = f"p50 {_ms(r['ack_final_p50_ms']):.2f} ms"
        report.add("  report ack p99, final", _ms(r["ack_final_p99_ms"]), "ms", note=note)
    report.add("  server CPU per rollout", r["server"]["cpu_ms_per_rollout"], "ms", note="heartbeats included")
    writes, wall = r["store_writes"], r["server"]["wall_s"]
    report.add("  store operations per second", writes["operations"] / wall, "ops/s", note="warm-up included")
    report.add("  group commits per second", writes["groups"] / wall, "commits/s")
    if "agl_attempt_heartbeats_total" in writes:
        beats = writes["agl_attempt_heartbeats_total"]
        note = f"{beats / max(writes['agl_attempt_heartbeat_writes_total'], 1):.1f} per store operation"
        report.add("  attempt heartbeats written per second", beats / wall, "beats/s", note=note)
    report.add("  server RSS peak", r["server"]["rss_peak_mb"], "MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the benchmark itself")
    parser.add_argument("--out", help="result file name under bench/results (default fleet_bench[_quick])")
    parser.add_argument("--label", default="", help="a note kept with the results (e.g. before/after)")
    parser.add_argument("--workdir", help="where data goes (default: a temp dir)")
    parser.add_argument("--scenarios", default="welcome,large-batch,lifecycle", help="which to run, comma-separated")
    parser.add_argument("--workers", type=int, help="streams of welcome and large-batch (default 1,000)")
    parser.add_argument("--conns", type=int, default=8, help="gRPC connections the streams are spread over")
    parser.add_argument("--rate", type=float, default=50.0, help="welcome: single enqueues per second")
    parser.add_argument("--dispatch-seconds", type=float, help="welcome: how long to enqueue (default 10)")
    parser.add_argument("--tasks", type=int, help="large-batch: rollouts (default 50,000)")
    parser.add_argument("--batch", type=int, help="large-batch: rollouts per EnqueueRollouts (default 8,192)")
    parser.add_argument("--lifecycle-workers", help="lifecycle: worker counts, comma-separated (default 1,8,64,256)")
    parser.add_argument("--lifecycle-seconds", type=float, help="lifecycle: the measured window (default 10)")
    parser.add_argument("--held-workers", type=int, default=256, help="held: workers (default 256)")
    parser.add_argument("--capacity", type=int, default=8, help="held: attempts each worker holds at once (default 8)")
    parser.add_argument("--hold", type=float, default=2.0, help="held: seconds the agent works per attempt (default 2)")
    parser.add_argument("--heartbeat", type=float, default=1.0, help="held: seconds between heartbeats (default 1)")
    parser.add_argument("--no-running-report", action="store_true", help="workers report only the final status")
    parser.add_argument(
        "--assign-preparing",
        action="store_true",
        help="workers do not say start_on_assignment: attempts arrive PREPARING and are reported RUNNING",
    )
    parser.add_argument(
        "--running-wait",
        action="store_true",
        help="workers wait for RUNNING's ack before the final report (default: both back to back, pipelined)",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="large-batch: seconds before giving up on the last ack (a cap)"
    )
    parser.add_argument(
        "--welcome-timeout", type=float, default=120.0, help="seconds to wait for every welcome before going on"
    )
    args = parser.parse_args()
    quick = args.quick
    workers = args.workers or (50 if quick else 1_000)
    tasks = args.tasks or (2_000 if quick else 50_000)
    batch = args.batch or (500 if quick else 8_192)
    dispatch_seconds = args.dispatch_seconds or (2.0 if quick else 10.0)
    lifecycle_seconds = args.lifecycle_seconds or (2.0 if quick else 10.0)
    lifecycle_workers = [int(x) for x in (args.lifecycle_workers or ("8" if quick else "1,8,64,256")).split(",")]
    scenarios = args.scenarios.split(",")
    out = args.out or ("fleet_bench_quick" if quick else "fleet_bench")

    report = Report("agl fleet benchmark" + (" (quick)" if quick else ""))
    context = report.context
    context.update(label=args.label, load_average_start=_load(), uptime_start=_uptime(), durability="sync")
    context["sizes"] = {
        "workers": workers, "conns": args.conns, "rate": args.rate, "dispatch_seconds": dispatch_seconds,
        "tasks": tasks, "batch": batch, "lifecycle_workers": lifecycle_workers,
        "lifecycle_seconds": lifecycle_seconds, "running_report": not args.no_running_report,
        "running_wait": args.running_wait and not args.no_running_report,
        "start_on_assignment": not args.assign_preparing,
        "large_batch_timeout_s": args.timeout, "welcome_timeout_s": args.welcome_timeout,
        "held": {"workers": args.held_workers, "capacity": args.capacity, "hold_s": args.hold,
                 "heartbeat_s": args.heartbeat},
    }  # fmt: skip
    binary = build_loadgen()
    base = {
        "conns": args.conns,
        "running-report": not args.no_running_report,
        "running-wait": args.running_wait,
        "start-on-assignment": not args.assign_preparing,
        "welcome-timeout": f"{args.welcome_timeout}s",
    }
    results: dict[str, Any] = {}
    context["results"] = results
    slack = args.welcome_timeout + 120
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        # The HTTP listener only answers the held scenario's two scrapes of /metrics.
        data, log = os.path.join(workdir, "data"), os.path.join(workdir, "server.log")
        server = ServerProcess(data, args=["--http-port", "0"], log_path=log).start()
        try:
            assert server.process is not None
            sampler = ServerSampler(server.process.pid)
            if "welcome" in scenarios:
                options = {**base, "scenario": "welcome", "workers": workers, "rate": args.rate}
                options["duration"] = f"{dispatch_seconds}s"
                results["welcome"] = r = run_scenario(
                    binary, server.address, sampler, options, dispatch_seconds + slack
                )
                report_welcome(report, r, args.rate)
            if "large-batch" in scenarios:
                options = {**base, "scenario": "large-batch", "workers": workers, "tasks": tasks, "batch": batch}
                options["timeout"] = f"{args.timeout}s"
                results["large-batch"] = r = run_scenario(
                    binary, server.address, sampler, options, args.timeout + slack
                )
                report_large_batch(report, r)
            if "lifecycle" in scenarios:
                for n in lifecycle_workers:
                    options = {**base, "scenario": "lifecycle", "workers": n, "batch": 1_000}
                    options.update(duration=f"{lifecycle_seconds}s", warmup="1s" if quick else "2s")
                    r = run_scenario(binary, server.address, sampler, options, lifecycle_seconds + slack)
                    results[f"lifecycle-{n}"] = r
                    report_lifecycle(report, r)
            if "held" in scenarios:
                options = {**base, "scenario": "lifecycle", "workers": args.held_workers, "batch": 1_000}
                options.update(capacity=args.capacity, hold=f"{args.hold}s", heartbeat=f"{args.heartbeat}s")
                options.update(duration=f"{lifecycle_seconds}s", warmup=f"{max(2.0, 2 * args.hold)}s")
                metrics_url = server.http_url + "/metrics"
                before = store_writes(metrics_url)
                r = run_scenario(binary, server.address, sampler, options, lifecycle_seconds + slack)
                r["store_writes"] = {k: v - before.get(k, 0.0) for k, v in store_writes(metrics_url).items()}
                results["held"] = r
                report_held(report, r, args)
            peaks = [r["server"]["rss_peak_mb"] for r in results.values()]
            report.add("server RSS peak, all scenarios", max(peaks, default=float("nan")), "MiB")
        finally:
            context["load_average_end"] = _load()
            context["uptime_end"] = _uptime()
            server.stop()
    print()
    print(f"load average (1/5/15 min): start {context['load_average_start']}, end {context['load_average_end']}")
    print(report.table())
    path = report.save(out)
    print(f"\nsaved {saved_as(path)}")
    return 0


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
