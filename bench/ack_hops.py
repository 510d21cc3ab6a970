"""Where a closed-loop span writer's ack goes, hop by hop inside agl-server.

Why: one writer's batch crosses agl-server's threads one after the other (grpc's poller, the event
loop, the store's writer, the event loop again), so its ack latency is the sum of those hops, the
commit's syncs and grpc's transport both ways. This bench times each hop of every batch in the
server (bench/probes/sitecustomize.py, ``AGL_PROBE_HOPS``) while one Go writer (agl-loadgen
span-ack) sends 10-span batches, and prints each hop's p50, p90 and p99 beside the ack latency the
writer saw (docs/span-acks.md, "Where one writer's ack goes").

    python bench/ack_hops.py                       # three rounds of 8 s
    python bench/ack_hops.py --inline-off          # each round also runs agl-server with AGL_INLINE_COMMITS=off
    python bench/ack_hops.py --yield-to-writer     # each round also runs that what-if (below)
    python bench/ack_hops.py --writers 8           # eight writers, each batch's hops kept by batch

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

The hops are those of the batches the writers measure: those read in the writers' first second
(their warm-up, which their latencies leave out too) are left out.

With one writer nothing else is written, so every group holds one batch and the hops of batch i
are the i-th entries of each hop's list; a run where that does not hold (a group of more than one
write, hops out of order, lists of different lengths) fails rather than pair the wrong times.

With ``--writers`` above one, the writes share group commits, so each batch's hops are kept with
the batch itself (``AGL_PROBE_BATCH_HOPS``), and two hops are also split in two. "queued -> begun":
the rest of the group that was running when the write was queued, then the time from that group's
end to the start of the write's own group. "begun -> committed": the group's operations, then
LMDB's commit with its syncs. Besides each hop's percentiles the bench reports what the slowest
1% of batches (by the server's part, read -> acked) spent in each hop, on average: what the tail is
made of. The round trip is not paired by stream there, so it is not reported.

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
from hops import (
    AFTER,
    BEHIND,
    COMMIT,
    GROUP_WRITES,
    OPERATIONS,
    ROUND_TRIP,
    SERVER_TOTAL,
    SPANS,
    batch_hops,
    hop_durations,
    lists_past,
    records_past,
    slowest,
)
from loadgen import SPAN_ACK_WARM_UP_S, run_span_ack
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
    group_sizes: list[int]  # writes per group
    ack_ms: tuple[float, float]  # the writer's ack latency p50, p99
    batches_per_s: float
    server_us: float  # the server's CPU per batch, warm-up included


async def run_one(env_extra: dict[str, str], workdir: Path, seconds: float, writers: int) -> Run:
    """A fresh agl-server recording its hops, ``writers`` Go writers for ``seconds`` after a second of
    warm-up: one writer to one attempt, several to 64 attempts in turn (as store_bench's)."""
    hops_file = workdir / "hops.json"
    hops_file.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PROBES), *filter(None, [env.get("PYTHONPATH")])])
    env["AGL_PROBE_HOPS" if writers == 1 else "AGL_PROBE_BATCH_HOPS"] = str(hops_file)
    env.update(env_extra)
    server = ServerProcess(workdir / "data", env=env, log_path=workdir / "server.log").start()
    with server:
        async with GrpcStore(server.address) as store:
            await store.wait_ready()
            coords = await targets(store, 1 if writers == 1 else 64)
        binary, batches = go_writers(coords, str(workdir))
        assert server.process is not None
        process = psutil.Process(server.process.pid)
        cpu = _cpu_seconds(process)
        result = run_span_ack(binary, server.address, batches, writers, seconds)
        server_us = (_cpu_seconds(process) - cpu) / max(1, result["batches_total"]) * 1e6
    if not hops_file.exists():
        raise SystemExit(f"agl-server wrote no hops to {hops_file}: is {PROBES} first on its PYTHONPATH?")
    recorded = json.loads(hops_file.read_text())
    # The hops of the window the writers measure: the batches of their warm-up are left out.
    warm_up_ns = int(SPAN_ACK_WARM_UP_S * 1e9)
    if writers == 1:
        times, sizes = lists_past(recorded["times"], recorded["group_sizes"], warm_up_ns)
        hops = hop_durations(times, sizes)
    else:
        kept = records_past(recorded["batches"], warm_up_ns)
        hops = batch_hops(kept, recorded["groups"])
        sizes = [recorded["groups"][index][2] for index in sorted({batch["group"] for batch in kept})]
    return Run(hops, sizes, (result["ack_p50_ms"], result["ack_p99_ms"]), result["batches_per_s"], server_us)


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
            run = await run_one(VARIANTS[name], run_dir, args.seconds, args.writers)
            runs[name].append(run)
            print(
                f"round {round_number}, {name}: ack p50 {run.ack_ms[0]:.2f} ms, p99 {run.ack_ms[1]:.2f} ms, "
                f"{run.batches_per_s:.0f} batches/s",
                flush=True,
            )
    for name in variants:
        report_variant(report, name, runs[name], args.writers)


def report_variant(report: Report, name: str, runs: list[Run], writers: int) -> None:
    """Each hop's percentiles over the batches of all rounds; the writers' figures, the median of the
    rounds; with several writers, the groups' sizes and what the slowest 1% of batches spent where."""
    for label, unit, values in (
        ("ack latency p50", "ms", [run.ack_ms[0] for run in runs]),
        ("ack latency p99", "ms", [run.ack_ms[1] for run in runs]),
        ("batches acked per second", "1/s", [run.batches_per_s for run in runs]),
        ("server CPU per batch", "us", [run.server_us for run in runs]),
    ):
        rounds = ", ".join(f"{value:.2f}" if unit == "ms" else f"{value:.0f}" for value in values)
        report.add(f"{label}, {name}", statistics.median(values), unit, note=f"median of rounds: {rounds}")
    inside = 0.0
    names = [span[2] for span in SPANS]
    if writers == 1:
        shown = [*names, ROUND_TRIP]
    else:
        shown = [names[0], names[1], BEHIND, AFTER, names[2], OPERATIONS, COMMIT, *names[3:], SERVER_TOTAL]
    for hop in shown:
        values = [value for run in runs for value in run.hops[hop]]
        p50 = percentile(values, 50)
        if hop in names:
            inside += p50
        note = f"p90 {percentile(values, 90):.0f}, p99 {percentile(values, 99):.0f} us; {len(values)} batches"
        report.add(f"  {hop}, {name}", p50, "us p50", note=note)
    report.add(f"  read -> acked, the hops' p50s added, {name}", inside, "us")
    if writers == 1:
        return
    sizes = [size for run in runs for size in run.group_sizes]
    report.add(f"  writes per group, {name}", statistics.mean(sizes), "mean", note=f"{len(sizes)} groups")
    # The tail by round: a slow round's batches would otherwise make the whole tail.
    tails = [slowest(run.hops)[1] for run in runs]
    for hop in [*shown, GROUP_WRITES]:
        means = [tail[hop] for tail in tails]
        unit, digits = ("writes, mean", 1) if hop == GROUP_WRITES else ("us mean", 0)
        rounds = ", ".join(f"{value:.{digits}f}" for value in means)
        report.add(f"  slowest 1%: {hop}, {name}", statistics.median(means), unit, note=f"by round: {rounds}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--seconds", type=float, default=8.0, help=f"each run's window, after {SPAN_ACK_WARM_UP_S:g} s of warm-up"
    )
    parser.add_argument(
        "--inline-off", action="store_true", help="each round also runs agl-server with AGL_INLINE_COMMITS=off"
    )
    parser.add_argument(
        "--yield-to-writer",
        action="store_true",
        help="each round also runs that what-if of the writer thread's path (module docstring)",
    )
    parser.add_argument("--writers", type=int, default=1, help="closed-loop Go writers (default 1)")
    parser.add_argument("--quick", action="store_true", help="one round of 1 s: a smoke test of the bench itself")
    parser.add_argument("--out", default="ack_hops", help="result file name under bench/results")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 1.0
    if args.rounds < 1 or args.seconds <= 0 or args.writers < 1:
        parser.error("--rounds and --writers must be at least 1 and --seconds more than 0")
    context: dict[str, Any] = {
        "rounds": args.rounds,
        "seconds": args.seconds,
        "writers": args.writers,
        "spans_per_batch": 10,
    }
    title = "one Go span writer's" if args.writers == 1 else f"{args.writers} Go span writers'"
    report = Report(f"{title} ack, hop by hop inside agl-server", context=context)
    return run_and_save(report, args.out, lambda workdir: measure(args, workdir, report), prefix="agl-hops-")


if __name__ == "__main__":
    raise SystemExit(main())
