#!/usr/bin/env python3
"""Span streaming through the Python, Go and TypeScript clients to one agl-server, same run.

Each client sends the same spans (a ``payload`` attribute of ``--size`` bytes and an int) for one
attempt on its batched, acknowledged IngestSpans stream, ``--per-call`` spans per call with every
call in flight at once, and waits for all acks; the clock runs from the first call to the last
ack, after a warm-up span. The server runs with its default durability (sync: acked once
fsynced). Each client runs ``--repeat`` times on a fresh attempt; the table shows the median.

    .venv/bin/python bench/clients_bench.py            # or: make bench-clients

Results go to bench/results/clients.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from agl_core import new_span
from agl_core.client import GrpcStore
from agl_core.types.spans import random_trace_id
from agl_server.process import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "clients.json"


async def _attempt(store: GrpcStore) -> tuple[str, str]:
    [rollout] = await store.enqueue_rollouts([{"input": None}])
    claimed = await store.dequeue_rollout(worker_id="bench", wait=5)
    assert claimed is not None and claimed.attempt is not None and claimed.rollout_id == rollout.rollout_id
    return claimed.rollout_id, claimed.attempt.attempt_id


async def _python_run(store: GrpcStore, rollout_id: str, attempt_id: str, args: argparse.Namespace) -> dict:
    trace = random_trace_id()
    payload = "x" * args.size
    spans = [
        new_span(
            "bench",
            rollout_id=rollout_id,
            attempt_id=attempt_id,
            trace_id=trace,
            attributes={"payload": payload, "i": i},
        )
        for i in range(args.spans)
    ]
    await store.add_spans([new_span("warm", rollout_id=rollout_id, attempt_id=attempt_id, trace_id=trace)])
    start = time.perf_counter()
    chunks = [spans[i : i + args.per_call] for i in range(0, len(spans), args.per_call)]
    await asyncio.gather(*(store.add_spans(chunk) for chunk in chunks))
    seconds = time.perf_counter() - start
    return {"client": "python", "spans": args.spans, "seconds": seconds, "spans_per_s": args.spans / seconds}


def _external_run(command: list[str], cwd: Path) -> dict:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _build(scratch: Path) -> dict[str, list[str]]:
    go_bin = scratch / "spanbench"
    go_dir, ts_dir = ROOT / "clients" / "go", ROOT / "clients" / "ts"
    subprocess.run(["go", "build", "-o", str(go_bin), "./internal/cmd/spanbench"], cwd=go_dir, check=True)
    subprocess.run(["npm", "run", "--silent", "build"], cwd=ts_dir, check=True)
    return {"go": [str(go_bin)], "ts": ["node", "dist/bench/spans.js"]}


def _command(base: list[str], client: str, options: dict[str, object]) -> list[str]:
    dashes = "--" if client == "ts" else "-"  # node's parseArgs wants --name, Go's flag takes -name
    return base + [part for name, value in options.items() for part in (dashes + name, str(value))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=1000, help="payload bytes per span")
    parser.add_argument("--per-call", type=int, default=100, help="spans per add/enqueue call")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        commands = _build(scratch)
        server = ServerProcess(scratch / "data").start()
        runs: dict[str, list[dict]] = {"python": [], "go": [], "ts": []}
        try:
            async with GrpcStore(server.address) as store:
                for _ in range(args.repeat):
                    for client in runs:
                        rollout_id, attempt_id = await _attempt(store)
                        if client == "python":
                            result = await _python_run(store, rollout_id, attempt_id, args)
                        else:
                            options = {
                                "server": server.address,
                                "rollout": rollout_id,
                                "attempt": attempt_id,
                                "spans": args.spans,
                                "size": args.size,
                                "per-call": args.per_call,
                            }
                            command = _command(commands[client], client, options)
                            result = _external_run(command, ROOT / "clients" / client)
                        stored = len(await store.query_spans(rollout_id, attempt_id))
                        if stored != args.spans + 1:
                            raise SystemExit(f"{client}: {stored} spans stored, expected {args.spans + 1}")
                        runs[client].append(result)
        finally:
            server.stop()

    rows = []
    print(f"\n{args.spans} spans of ~{args.size} B, {args.per_call} per call, median of {args.repeat} runs")
    print(f"{'client':<8} {'spans/s':>10} {'seconds':>9}   runs (spans/s)")
    for client, results in runs.items():
        rates = [r["spans_per_s"] for r in results]
        median = statistics.median(rates)
        rows.append({"client": client, "median_spans_per_s": median, "runs": results})
        each = ", ".join(f"{r:,.0f}" for r in rates)
        print(f"{client:<8} {median:>10,.0f} {args.spans / median:>9.2f}   {each}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "clients_span_streaming",
                "args": vars(args),
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load": os.getloadavg()},
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nsaved {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
