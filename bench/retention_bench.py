#!/usr/bin/env python3
"""Retention benchmark: DeleteRollouts throughput and BackupStore time and size, against agl-server.

- **Delete**: finished rollouts with N spans each (~1 KB LLM-call spans), for each N of
  ``--spans-per-rollout`` (``--total-spans`` / N rollouts, at most ``--max-rollouts``), deleted by
  one DeleteRollouts (status succeeded); rollouts/s and spans/s. Meanwhile a probe writes one
  small update every 20 ms and records its acknowledgement
  latency: the longest is what a deletion costs the writes of others (the write lock is held
  for one bounded step at a time, never for the whole deletion).
- **Backup**: for data of growing size, BackupStore's wall time and the size of the compacted
  copy next to the data file; then the same after deleting half of the rollouts (the copy
  leaves the freed pages out, the file keeps them).

Synced commits (agl-server's default). Prints tables and saves bench/results/<--out>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, llm_call_span, percentile

from agl_core.client import GrpcStore
from agl_server.process import ServerProcess

BATCH = 256


async def fill(store: GrpcStore, rollouts: int, spans: int, tag: str) -> list[str]:
    """``rollouts`` succeeded rollouts with ``spans`` spans each; their ids."""
    ids = []
    for i in range(rollouts):
        rollout = await store.start_rollout({"tag": tag, "i": i})
        attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
        batch = [llm_call_span(rollout.rollout_id, attempt_id, j) for j in range(spans)]
        await asyncio.gather(*(store.add_spans(batch[k : k + BATCH]) for k in range(0, len(batch), BATCH)))
        await store.update_attempt(rollout.rollout_id, attempt_id, status="succeeded")
        ids.append(rollout.rollout_id)
    return ids


async def probe(store: GrpcStore, stop: asyncio.Event, latencies: list[float]) -> None:
    """One small write every 20 ms (a worker heartbeat), timed until ``stop``."""
    while not stop.is_set():
        started = time.perf_counter()
        await store.update_worker("probe", heartbeat_stats={"t": started})
        latencies.append(time.perf_counter() - started)
        try:
            await asyncio.wait_for(stop.wait(), 0.02)
        except TimeoutError:
            pass


async def bench_delete(address: str, rollouts: int, spans: int, report: Report) -> None:
    async with GrpcStore(address) as store:
        await fill(store, rollouts, spans, f"del-{spans}")
        latencies: list[float] = []
        stop = asyncio.Event()
        prober = asyncio.ensure_future(probe(store, stop, latencies))
        await asyncio.sleep(0.2)  # a baseline of probe writes before the deletion starts
        baseline = list(latencies)
        started = time.perf_counter()
        summary = await store.delete_rollouts(status_in=["succeeded"])
        seconds = time.perf_counter() - started
        stop.set()
        await prober
    assert summary.deleted_rollouts == rollouts and summary.deleted_spans == rollouts * spans, summary
    during = latencies[len(baseline) :]
    label = f"{rollouts} x {spans} spans"
    report.add(f"delete {label}", rollouts / seconds, "rollouts/s", note=f"{seconds:.2f} s")
    report.add(f"delete {label}, spans", rollouts * spans / seconds, "spans/s")
    report.add(
        f"probe write ack during it, p50 ({label})",
        percentile(during, 50) * 1e3,
        "ms",
        note=f"max {max(during, default=float('nan')) * 1e3:.0f} ms over {len(during)} writes; "
        f"before: p50 {percentile(baseline, 50) * 1e3:.0f} ms",
    )


async def bench_backup(address: str, data_dir: Path, rounds: list[int], spans: int, report: Report) -> None:
    async with GrpcStore(address) as store:
        ids: list[str] = []
        for target in rounds:
            ids += await fill(store, target - len(ids), spans, "backup")
            await backup_row(store, data_dir, f"{len(ids)} rollouts x {spans} spans", report)
        await store.delete_rollouts(ids[::2])
        await backup_row(store, data_dir, f"{len(ids)} rollouts, half deleted", report)


async def backup_row(store: GrpcStore, data_dir: Path, label: str, report: Report) -> None:
    stats = await store.stats()
    dest = Path(tempfile.mkdtemp(prefix="agl-backup-", dir=data_dir.parent)) / "copy"
    started = time.perf_counter()
    info = await store.backup(dest)
    seconds = time.perf_counter() - started
    mib = 1 << 20
    report.add(
        f"backup, {label}",
        seconds,
        "s",
        note=f"file {stats['file_bytes'] / mib:.1f} MiB, in use {stats['used_bytes'] / mib:.1f} MiB, "
        f"copy {info.bytes / mib:.1f} MiB ({info.bytes / stats['file_bytes']:.0%} of the file), "
        f"{info.bytes / mib / seconds:.0f} MiB/s",
    )
    info.path.unlink()


async def main_async(args: argparse.Namespace, report: Report) -> None:
    with tempfile.TemporaryDirectory(prefix="agl-retention-bench-") as tmp:
        for spans in args.spans_per_rollout:
            data_dir = Path(tmp) / f"delete-{spans}"
            rollouts = max(1, min(args.max_rollouts, args.total_spans // spans))
            with ServerProcess(data_dir, log_path=Path(tmp) / f"delete-{spans}.log") as server:
                await bench_delete(server.address, rollouts, spans, report)
        data_dir = Path(tmp) / "backup"
        with ServerProcess(data_dir, log_path=Path(tmp) / "backup.log") as server:
            await bench_backup(server.address, data_dir, args.backup_rollouts, args.backup_spans, report)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-spans", type=int, default=200_000, help="spans per deletion measured")
    parser.add_argument("--max-rollouts", type=int, default=2000, help="rollouts per deletion at most")
    parser.add_argument("--spans-per-rollout", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument(
        "--backup-rollouts", type=int, nargs="+", default=[100, 400], help="data sizes (rollouts) backed up"
    )
    parser.add_argument("--backup-spans", type=int, default=100, help="spans per rollout of the backup data")
    parser.add_argument("--out", default="retention_bench")
    args = parser.parse_args()
    report = Report("retention: delete throughput, backup time and size")
    report.context = {
        "total_spans": args.total_spans,
        "max_rollouts": args.max_rollouts,
        "spans_per_rollout": args.spans_per_rollout,
        "backup_rollouts": args.backup_rollouts,
        "backup_spans": args.backup_spans,
        "span": "~1 KB LLM-call span (bench/common.py)",
        "durability": "sync",
        "load_average_1m_at_start": os.getloadavg()[0],
    }
    print(report.title)
    asyncio.run(main_async(args, report))
    report.context["load_average_1m_at_end"] = os.getloadavg()[0]
    print(report.table())
    print(f"saved {report.save(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
