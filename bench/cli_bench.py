#!/usr/bin/env python3
"""How long the ``agl`` inspection commands take on a server holding many rollouts.

Fills a fresh agl-server (nosync) with N finished rollouts of S spans each (~1 KB LLM-call spans),
then times each command as a user runs it: a new ``python -m agl_core.cli`` process, so the
figures include interpreter start-up and imports (measured alone as ``agl --version``).
``rollouts show`` replays the whole event log for the status history (3 events per rollout
here), so it is timed with and without ``--no-history``. Export throughput is spans per second
of the whole command.

Prints a table and writes ``bench/results/cli_bench.json``.

    python bench/cli_bench.py [--rollouts 2000] [--spans 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, Report, llm_call_span

from agl_core.client import GrpcStore
from agl_server.process import ServerProcess


async def fill(address: str, rollouts: int, spans: int) -> list[str]:
    ids: list[str] = []
    async with GrpcStore(address) as store:
        for i in range(rollouts):
            rollout = await store.start_rollout({"i": i})
            attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
            await store.add_spans([llm_call_span(rollout.rollout_id, attempt_id, i * spans + k) for k in range(spans)])
            await store.update_attempt(rollout.rollout_id, attempt_id, status="succeeded")
            ids.append(rollout.rollout_id)
    return ids


def timed(*args: str, repeat: int = 3) -> float:
    """The best of ``repeat`` runs, in seconds (the machine is shared: the best run is the least disturbed)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "agl_core.cli", *args], check=True, capture_output=True, cwd=ROOT)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rollouts", type=int, default=2000)
    parser.add_argument("--spans", type=int, default=5)
    options = parser.parse_args()

    report = Report(
        "agl inspection commands",
        context={"rollouts": options.rollouts, "spans": options.spans, "load_average": os.getloadavg()},
    )
    with tempfile.TemporaryDirectory() as scratch:
        server = ServerProcess(Path(scratch) / "data", args=["--durability", "nosync"]).start()
        try:
            ids = asyncio.run(fill(server.address, options.rollouts, options.spans))
            at = ("--server", server.address)
            report.add("agl --version (start-up and imports)", timed("--version") * 1000, "ms")
            report.add("agl stats", timed("stats", *at) * 1000, "ms")
            report.add("agl rollouts list (50 rows)", timed("rollouts", "list", *at) * 1000, "ms")
            report.add(
                "agl rollouts list --limit 1000 --json",
                timed("rollouts", "list", "--limit", "1000", "--json", *at) * 1000,
                "ms",
            )
            middle = ids[len(ids) // 2]
            report.add(
                "agl rollouts show (with history)",
                timed("rollouts", "show", middle, *at) * 1000,
                "ms",
                note=f"replays {3 * len(ids)} events",
            )
            report.add(
                "agl rollouts show --no-history", timed("rollouts", "show", middle, "--no-history", *at) * 1000, "ms"
            )
            report.add("agl rollouts spans", timed("rollouts", "spans", middle, *at) * 1000, "ms")
            out = Path(scratch) / "export.jsonl"
            seconds = timed("export", "--out", str(out), *at, repeat=1)
            report.add("agl export (whole store)", seconds, "s", note=f"{out.stat().st_size / 1e6:.1f} MB")
            report.add("agl export throughput", options.rollouts * options.spans / seconds, "spans/s")
        finally:
            server.stop()
    print(report.table())
    print(f"saved {report.save('cli_bench')}")


if __name__ == "__main__":
    main()
