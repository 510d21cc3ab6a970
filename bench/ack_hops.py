"""Where one closed-loop span writer's ack goes, hop by hop inside agl-server.

Why: one writer's batch crosses agl-server's threads one after the other (grpc's poller, the event
loop, the store's writer, the event loop again), so its ack latency is the sum of those hops, the
commit's syncs and grpc's transport both ways. This bench times each hop of every batch in the
server (bench/probes/sitecustomize.py, ``AGL_PROBE_HOPS``) while one Go writer (agl-loadgen
span-ack) sends 10-span batches, and prints each hop's p50, p90 and p99 beside the ack latency the
writer saw (docs/span-acks.md, "Where one writer's ack goes").

    python bench/ack_hops.py                       # three rounds of 8 s
    python bench/ack_hops.py --inline-off          # each round also runs agl-server with AGL_INLINE_COMMITS=off
    python bench/ack_hops.py --yield-to-writer     # each round also runs that what-if (below)

The hops, per batch:

- read -> queued: the event loop checks the batch (the edge check, the ids) and queues its write;
- queued -> begun: the writer wakes and takes it (the loop's turn ends first on a shared core);
  with agl-server's inline commits (``AGL_INLINE_COMMITS``, on by default) a lone stream's write
  begins at once on the event loop, so this hop and the next but one are nearly nothing;
- begun -> committed: the span operation, the commit and its syncs;
- committed -> delivered: the event loop wakes for the result;
- delivered -> acked: the waiting stream resumes and builds the ack;
- acked -> next read: grpc.aio sends the ack, the client sends the next batch, grpc.aio and its
  poller hand it to the event loop (the client's own time is in it too).

With one writer nothing else is written, so every group holds one batch and the hops of batch i
are the i-th entries of each hop's list; a run where that does not hold (a group of more than one
write, hops out of order, lists of different lengths) fails rather than pair the wrong times.

``--inline-off`` runs each round's server also with every write through the store's writer thread,
as before inline commits (``AGL_INLINE_COMMITS=off``): the hand-overs those commits save.
``--yield-to-writer`` is a what-if, never a setting, of that thread path: the event loop gives up its
CPU as soon as it has queued a write for an idle writer, so that the write begins before the loop
finishes its turn.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from common import ROOT, Report, percentile, run_and_save
from hops import ROUND_TRIP, SPANS, hop_durations
from loadgen import run_span_ack
from store_bench_ack import _cpu_seconds, go_writers
from store_bench_workloads import targets

from agl_core.client import GrpcStore
from agl_server.process import ServerProcess

PROBES = ROOT / "bench" / "probes"
VARIANTS = {
    "as shipped": {},
    "inline commits off": {"AGL_INLINE_COMMITS": "off"},
    "yield-to-writer": {"AGL_INLINE_COMMITS": "off", "AGL_PROBE_YIELD_TO_WRITER": "1"},
}


@dataclass
class Run:
    hops: dict[str, list[float]]  # microseconds per batch, by hop
    ack_ms: tuple[float, float]  # the writer's ack latency p50, p99
    batches_per_s: float
    server_us: float  # the server's CPU per batch, warm-up included


async def run_one(env_extra: dict[str, str], workdir: Path, seconds: float) -> Run:
    """A fresh agl-server recording its hops, one Go writer for ``seconds`` after a second of warm-up."""
    hops_file = workdir / "hops.json"
    hops_file.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PROBES), *filter(None, [env.get("PYTHONPATH")])])
    env["AGL_PROBE_HOPS"] = str(hops_file)
    env.update(env_extra)
    server = ServerProcess(workdir / "data", env=env, log_path=workdir / "server.log").start()
    with server:
        async with GrpcStore(server.address) as store:
            await store.wait_ready()
            coords = await targets(store, 1)
        binary, batches = go_writers(coords, str(workdir))
        assert server.process is not None
        process = psutil.Process(server.process.pid)
        cpu = _cpu_seconds(process)
        result = run_span_ack(binary, server.address, batches, 1, seconds)
        server_us = (_cpu_seconds(process) - cpu) / max(1, result["batches_total"]) * 1e6
    if not hops_file.exists():
        raise SystemExit(f"agl-server wrote no hops to {hops_file}: is {PROBES} first on its PYTHONPATH?")
    recorded = json.loads(hops_file.read_text())
    hops = hop_durations(recorded["times"], recorded["group_sizes"])
    return Run(hops, (result["ack_p50_ms"], result["ack_p99_ms"]), result["batches_per_s"], server_us)


async def measure(args: argparse.Namespace, workdir: str, report: Report) -> None:
    variants = ["as shipped"]
    if args.inline_off:
        variants.append("inline commits off")
    if args.yield_to_writer:
        variants.append("yield-to-writer")
    runs: dict[str, list[Run]] = {name: [] for name in variants}
    for round_number in range(1, args.rounds + 1):
        for name in variants:
            run_dir = Path(workdir) / f"{name.replace(' ', '-')}-{round_number}"
            run_dir.mkdir()
            run = await run_one(VARIANTS[name], run_dir, args.seconds)
            runs[name].append(run)
            print(
                f"round {round_number}, {name}: ack p50 {run.ack_ms[0]:.2f} ms, p99 {run.ack_ms[1]:.2f} ms, "
                f"{run.batches_per_s:.0f} batches/s",
                flush=True,
            )
    for name in variants:
        report_variant(report, name, runs[name])


def report_variant(report: Report, name: str, runs: list[Run]) -> None:
    """Each hop's percentiles over the batches of all rounds; the writer's figures, the median of the rounds."""
    for label, unit, values in (
        ("ack latency p50", "ms", [run.ack_ms[0] for run in runs]),
        ("ack latency p99", "ms", [run.ack_ms[1] for run in runs]),
        ("batches acked per second", "1/s", [run.batches_per_s for run in runs]),
        ("server CPU per batch", "us", [run.server_us for run in runs]),
    ):
        rounds = ", ".join(f"{value:.2f}" if unit == "ms" else f"{value:.0f}" for value in values)
        report.add(f"{label}, {name}", statistics.median(values), unit, note=f"median of rounds: {rounds}")
    inside = 0.0
    for hop in [span[2] for span in SPANS] + [ROUND_TRIP]:
        values = [value for run in runs for value in run.hops[hop]]
        p50 = percentile(values, 50)
        if hop != ROUND_TRIP:
            inside += p50
        note = f"p90 {percentile(values, 90):.0f}, p99 {percentile(values, 99):.0f} us; {len(values)} batches"
        report.add(f"  {hop}, {name}", p50, "us p50", note=note)
    report.add(f"  read -> acked, the hops' p50s added, {name}", inside, "us")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--seconds", type=float, default=8.0, help="each run's window, after 1 s of warm-up")
    parser.add_argument(
        "--inline-off", action="store_true", help="each round also runs agl-server with AGL_INLINE_COMMITS=off"
    )
    parser.add_argument(
        "--yield-to-writer",
        action="store_true",
        help="each round also runs that what-if of the writer thread's path (module docstring)",
    )
    parser.add_argument("--quick", action="store_true", help="one round of 1 s: a smoke test of the bench itself")
    parser.add_argument("--out", default="ack_hops", help="result file name under bench/results")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 1.0
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be at least 1 and --seconds more than 0")
    context: dict[str, Any] = {"rounds": args.rounds, "seconds": args.seconds, "writers": 1, "spans_per_batch": 10}
    report = Report("one Go span writer's ack, hop by hop inside agl-server", context=context)
    return run_and_save(report, args.out, lambda workdir: measure(args, workdir, report), prefix="agl-hops-")


if __name__ == "__main__":
    raise SystemExit(main())
