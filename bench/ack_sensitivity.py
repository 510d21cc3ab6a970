"""Which thread's CPU eight closed-loop span writers wait for: their ack latency with CPU added to one
of agl-server's threads, and (a what-if) without the store writer's span-id de-duplication and
sequence ids.

Why: with eight Go writers agl-server's Python threads keep one core busy, and every microsecond
of it shows in the acks. What matters is which microseconds. This bench adds a fixed amount of
CPU per batch to one thread at a time (bench/probes/sitecustomize.py, loaded into the server it
starts) and measures the eight writers again, in rounds, so that each probe runs next to the
others on a VM whose speed drifts. The slope says what a change on that thread is worth before it
is built (docs/span-acks.md).

    python bench/ack_sensitivity.py                                  # none, writer:60, writer:120, loop:60
    python bench/ack_sensitivity.py --probes none,no-dedup --rounds 4
    python bench/ack_sensitivity.py --probes none,python-loop --rounds 4    # the compiled span loop's worth

Probes: ``none``; ``writer:US`` (the store writer spins US microseconds after each batch's write);
``loop:US`` (the event loop spins before each batch's edge check); ``python-loop`` (the store writer
runs its Python span loop, ``AGL_SPAN_LOOP=python``, instead of the compiled one); ``no-dedup`` (the
what-if, on the Python loop). A run fails when its probe did not take effect in the server: the
server reported fewer spins than batches, or the spinning thread spent less than the spin per
batch, or span-id filters exist without de-duplication, or /metrics names another span loop than
the probe's, or (``reserve:MB``) the server made no reserve or used all of it. A figure would then
measure nothing.

``reserve:MB`` is a what-if bound, never a setting: the server's LMDB free list starts with one
contiguous run of MB MiB of free pages, so every commit writes its pages as one run until that is
used up (bench/probes/sitecustomize.py; docs/span-acks.md, "What a durable commit writes"). Give it
room for the whole run: eight writers used 1.4-1.6 GiB of it in a run of ``--seconds 5``.
"""

from __future__ import annotations

import argparse
import mmap
import os
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil
from common import ROOT, Report, run_and_save
from lmdb_pages import RESERVE_LEFT_PAGES, unreached_reserve
from loadgen import run_span_ack
from store_bench_ack import _cpu_seconds, _thread_cpu, go_writers, thread_cpu_spent
from store_bench_workloads import targets
from writer_metrics import WriterShare, scrape, writer_totals

from agl_core.client import GrpcStore
from agl_core.store.lmdb import span_path
from agl_server.process import ServerProcess

PROBES = ROOT / "bench" / "probes"
SPINS_EVERY = 64  # how often bench/probes/sitecustomize.py writes its count of spins
WRITERS = 8
TARGETS = 64
LOOP_THREAD = "event loop thread"
WRITER_THREADS = "other threads (store writer, poller)"


@dataclass(frozen=True)
class Probe:
    name: str
    env: dict[str, str]
    writer_us: float = 0.0
    loop_us: float = 0.0
    skip_dedup: bool = False
    span_loop: str = ""  # the span loop the server must run; "": the one it runs by default
    reserve_mb: int = 0

    def expected_loop(self) -> str:
        # The servers get this process's environment (AGL_SPAN_LOOP included) and installation.
        return self.span_loop or span_path.choose()[0]


def parse_probe(text: str) -> Probe:
    kind, _, amount = text.partition(":")
    if kind == "none" and not amount:
        return Probe(text, {})
    if kind == "no-dedup" and not amount:
        python = {"AGL_SPAN_LOOP": "python"}
        return Probe(text, {"AGL_PROBE_SKIP_DEDUP": "1", **python}, skip_dedup=True, span_loop="python")
    if kind == "python-loop" and not amount:
        return Probe(text, {"AGL_SPAN_LOOP": "python"}, span_loop="python")
    if kind == "reserve" and amount.isdigit() and int(amount) > 0:
        return Probe(text, {"AGL_PROBE_RESERVE_MB": amount}, reserve_mb=int(amount))
    if kind in ("writer", "loop") and amount:
        try:
            us = float(amount)
        except ValueError:
            us = -1.0
        if us > 0:
            if kind == "writer":
                return Probe(text, {"AGL_PROBE_WRITER_US": amount}, writer_us=us)
            return Probe(text, {"AGL_PROBE_LOOP_US": amount}, loop_us=us)
    raise argparse.ArgumentTypeError(
        f"probe {text!r}: use none, python-loop, no-dedup, writer:US or loop:US with US a positive number of "
        "microseconds, or reserve:MB with MB a positive whole number of MiB"
    )


@dataclass(frozen=True)
class Run:
    p50_ms: float
    p99_ms: float
    batches_per_s: float
    server_us: float  # the server's CPU per batch, warm-up included
    loop_us: float  # of it, the event loop thread's
    writer_us: float  # of it, the store writer's and grpc.aio's poller's
    run_ms_per_group: float  # a group's operations, wall time (the server's /metrics)
    commit_ms_per_group: float  # a group's commit: writing and syncing its pages
    operations_per_group: float
    filters: float  # span-id filters in memory at the end
    batches: int  # batches acked, warm-up included
    spins: int  # spins the probe reported (bench/probes: written every SPINS_EVERY)
    span_loops: tuple[str, ...]  # the span loop(s) the server's /metrics named
    reserve_size: int  # the data file's bytes once the probe's reserve was freed (0: none made)
    reserve_unused: int  # pages at the top of the reserve that no tree holds after the run


async def run_one(probe: Probe, workdir: Path, seconds: float) -> Run:
    """A fresh agl-server with ``probe``, eight Go writers for ``seconds`` (after agl-loadgen's second
    of warm-up), and what the run cost the server."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PROBES), *filter(None, [env.get("PYTHONPATH")])])
    env.update(probe.env)
    spins_file = workdir / "probe-spins"
    env["AGL_PROBE_SPINS"] = str(spins_file)
    env["AGL_PROBE_SPINS_EVERY"] = str(SPINS_EVERY)
    reserve_file = workdir / "probe-reserve-size"
    env["AGL_PROBE_RESERVE_SIZE"] = str(reserve_file)
    data = workdir / "data"
    server = ServerProcess(data, args=["--http-port", "0"], env=env, log_path=workdir / "server.log").start()
    with server:
        async with GrpcStore(server.address) as store:
            await store.wait_ready()
            coords = await targets(store, TARGETS)
        binary, batches = go_writers(coords, str(workdir))
        assert server.process is not None
        process = psutil.Process(server.process.pid)
        url = f"{server.http_url}/metrics"
        totals, threads, cpu = writer_totals(url), _thread_cpu(process), _cpu_seconds(process)
        started = time.monotonic()
        result = run_span_ack(binary, server.address, batches, WRITERS, seconds)
        wall = time.monotonic() - started
        after, samples = _thread_cpu(process), scrape(url)
        share = WriterShare.between(totals, writer_totals(url, samples), wall)
        count = max(1, result["batches_total"])
        if "agl_span_id_filters" not in samples:
            raise LookupError("agl_span_id_filters is not in agl-server's /metrics")
        spins = int(spins_file.read_text()) if spins_file.exists() else 0
        run = Run(
            result["ack_p50_ms"],
            result["ack_p99_ms"],
            result["batches_per_s"],
            (_cpu_seconds(process) - cpu) / count * 1e6,
            thread_cpu_spent(threads, after, LOOP_THREAD)[0] / count * 1e6,
            thread_cpu_spent(threads, after, WRITER_THREADS)[0] / count * 1e6,
            share.run_ms_per_group,
            share.commit_ms_per_group,
            share.operations_per_group,
            samples["agl_span_id_filters"],
            count,
            spins,
            tuple(loop for loop in span_path.LOOPS if samples.get(f"agl_store_span_loop_info{{loop={loop}}}") == 1),
            int(reserve_file.read_text()) if reserve_file.exists() else 0,
            0,
        )
    if run.reserve_size:
        run = replace(run, reserve_unused=unreached_reserve(data / "data.mdb", mmap.PAGESIZE, run.reserve_size))
    return run


def check_took_effect(probe: Probe, run: Run) -> None:
    """Fail rather than report a probe the server did not run (a server that did not load
    bench/probes measures the code as shipped under the probe's name)."""
    problems = []
    spinning = probe.writer_us or probe.loop_us
    # Each batch spins once (its write, or its edge check); the count is written every SPINS_EVERY.
    if spinning and run.spins < run.batches - SPINS_EVERY:
        problems.append(f"it reported {run.spins} spins for {run.batches} batches")
    if not spinning and run.spins:
        problems.append(f"it reported {run.spins} spins, with no spin asked for")
    if probe.writer_us and run.writer_us < probe.writer_us:
        problems.append(f"its writer threads spent {run.writer_us:.0f} us per batch, less than the spin")
    if probe.loop_us and run.loop_us < probe.loop_us:
        problems.append(f"its event loop spent {run.loop_us:.0f} us per batch, less than the spin")
    if probe.skip_dedup and run.filters:
        problems.append(f"it holds {run.filters:.0f} span-id filters, so it still de-duplicated")
    if not probe.skip_dedup and not run.filters:
        problems.append("it holds no span-id filter after storing spans")
    if probe.reserve_mb and run.reserve_size < probe.reserve_mb << 20:
        problems.append(f"its data file held {run.reserve_size} bytes once the reserve was freed")
    if probe.reserve_mb and run.reserve_unused < RESERVE_LEFT_PAGES:
        problems.append(f"it left {run.reserve_unused} pages of its reserve unused: it may have used it up, give more")
    if not probe.reserve_mb and run.reserve_size:
        problems.append("it made a reserve, with none asked for")
    if run.span_loops != (probe.expected_loop(),):
        problems.append(f"its /metrics names the span loop(s) {run.span_loops}, not {probe.expected_loop()!r}")
    if problems:
        raise SystemExit(f"probe {probe.name}: {'; '.join(problems)}; is {PROBES} first on the server's PYTHONPATH?")


async def measure(args: argparse.Namespace, workdir: str, report: Report) -> None:
    runs: dict[str, list[Run]] = {probe.name: [] for probe in args.probes}
    for round_no in range(1, args.rounds + 1):
        for probe in args.probes:
            where = Path(workdir) / f"{probe.name.replace(':', '-')}-{round_no}"
            where.mkdir()
            run = await run_one(probe, where, args.seconds)
            check_took_effect(probe, run)
            runs[probe.name].append(run)
            print(
                f"round {round_no}, {probe.name}: p50 {run.p50_ms:.2f} p99 {run.p99_ms:.2f} ms, "
                f"{run.batches_per_s:.0f} batches/s, {run.server_us:.0f} us per batch "
                f"(loop {run.loop_us:.0f}, writer and poller {run.writer_us:.0f}), "
                f"a group's operations {run.run_ms_per_group:.3f} ms, its commit {run.commit_ms_per_group:.3f} ms "
                f"({run.operations_per_group:.2f} operations)"
                + (f", {run.reserve_unused} reserve pages unused" if run.reserve_size else ""),
                flush=True,
            )
    for probe in args.probes:
        done = runs[probe.name]

        def add(what: str, unit: str, values: list[float], digits: int = 2, probe: Probe = probe) -> None:
            each = ", ".join(f"{v:.{digits}f}" for v in values)
            report.add(f"{what}, {probe.name}", statistics.median(values), unit, note=f"median of: {each}")

        add("ack latency p50", "ms", [r.p50_ms for r in done])
        add("ack latency p99", "ms", [r.p99_ms for r in done])
        add("  batches acked per second", "batches/s", [r.batches_per_s for r in done], 0)
        add("  server CPU per batch", "us", [r.server_us for r in done], 0)
        add("    of it the event loop", "us", [r.loop_us for r in done], 0)
        add("    of it the store writer and grpc's poller", "us", [r.writer_us for r in done], 0)
        add("  a group's operations (wall)", "ms", [r.run_ms_per_group for r in done], 3)
        add("  a group's commit (wall)", "ms", [r.commit_ms_per_group for r in done], 3)
        add("  operations per group", "operations", [r.operations_per_group for r in done])
        if probe.reserve_mb:
            add("  reserve pages never reached", "pages", [float(r.reserve_unused) for r in done], 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--probes",
        type=lambda text: [parse_probe(part.strip()) for part in text.split(",")],
        default=[parse_probe(p) for p in ("none", "writer:60", "writer:120", "loop:60")],
        help="probes separated by commas (default none,writer:60,writer:120,loop:60; see the module's docstring)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs every probe once (default 3)")
    parser.add_argument("--seconds", type=float, default=12.0, help="each run's window, after 1 s of warm-up")
    parser.add_argument("--quick", action="store_true", help="one round of 1 s: a smoke test of the bench itself")
    parser.add_argument("--out", default="ack_sensitivity", help="result file name under bench/results")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 1.0
    names = [probe.name for probe in args.probes]
    if len(set(names)) != len(names):
        parser.error(f"--probes names a probe twice: {','.join(names)}")
    context: dict[str, Any] = {"probes": names, "rounds": args.rounds, "seconds": args.seconds, "writers": WRITERS}
    report = Report("eight Go span writers with CPU added to one server thread", context=context)
    return run_and_save(report, args.out, lambda workdir: measure(args, workdir, report), prefix="agl-sensitivity-")


if __name__ == "__main__":
    raise SystemExit(main())
