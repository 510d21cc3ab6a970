#!/usr/bin/env python3
"""Span resources benchmark: acknowledged ingestion and data growth with and without a resource.

OTLP spans carry their exporter's resource (service, host, process attributes). agl stores each
distinct resource once (``agl_core/store/lmdb/span_resources.py``); this measures what that costs
on the ingest path and what it saves on disk, against agl-server with synced commits:

- acked spans/s (synced commits unless ``--durability nosync``) of ~1 KB LLM-call spans over one
  client stream to 64 attempts (64 spans per call, 16 calls in flight),
  without a resource and with a shared resource of ``--resource-bytes``;
- data file growth per span in both cases.

Prints a table and saves bench/results/<--out>.json. Run it against an older checkout by putting
that checkout first on PYTHONPATH (the server process inherits it) to get the "before" figures.
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
from common import Report, llm_call_span

from agl_core.client import GrpcStore
from agl_server.process import ServerProcess

BATCH = 64
INFLIGHT = 16


async def measure(address: str, total: int, resource_bytes: int) -> tuple[float, float]:
    """(acked spans/s, data bytes per span) for ``total`` spans with a resource of ``resource_bytes``."""
    async with GrpcStore(address) as store:
        rollouts = [await store.start_rollout({"i": i}) for i in range(64)]
        pool = []
        for i in range(BATCH):
            rollout = rollouts[i % len(rollouts)]
            span = llm_call_span(rollout.rollout_id, rollout.attempt.attempt_id, i)  # type: ignore[union-attr]
            if resource_bytes:
                attributes = span.resource.attributes
                attributes.add(key="service.name").value.string_value = "agent"
                attributes.add(key="host.description").value.string_value = "h" * resource_bytes
            pool.append(span)
        before = (await store.stats())["data_bytes"]
        semaphore = asyncio.Semaphore(INFLIGHT)
        accepted = 0

        async def send() -> None:
            nonlocal accepted
            async with semaphore:
                for span in pool:
                    span.span_id = os.urandom(8)
                accepted += (await store.add_spans(pool)).accepted

        started = time.perf_counter()
        await asyncio.gather(*(send() for _ in range(total // BATCH)))
        elapsed = time.perf_counter() - started
        after = (await store.stats())["data_bytes"]
    return accepted / elapsed, (after - before) / accepted


async def main_async(args: argparse.Namespace, report: Report) -> None:
    for resource_bytes in (0, args.resource_bytes):
        with tempfile.TemporaryDirectory(prefix="agl-span-resource-bench-") as workdir:
            server = ServerProcess(
                Path(workdir) / "data", args=["--durability", args.durability], log_path=Path(workdir) / "server.log"
            ).start()
            try:
                await measure(server.address, BATCH * INFLIGHT, resource_bytes)  # warm-up
                rate, per_span = await measure(server.address, args.spans, resource_bytes)
            finally:
                server.stop()
        label = f"{resource_bytes} B resource" if resource_bytes else "no resource"
        report.add(f"acked ingest, 1 stream, {label}", rate, "spans/s", target=">= 50,000", met=rate >= 50_000)
        report.add(f"data file growth per span, {label}", per_span, "bytes")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--resource-bytes", type=int, default=2_000)
    parser.add_argument("--out", default="span_resource_bench")
    parser.add_argument(
        "--durability",
        default="sync",
        choices=["sync", "nosync"],
        help="nosync takes fsync out of the figure (to see the CPU cost on a machine with a slow disk)",
    )
    args = parser.parse_args()
    report = Report("span resources: ingest and storage")
    report.context = {
        "spans": args.spans,
        "resource_bytes": args.resource_bytes,
        "batch": BATCH,
        "inflight": INFLIGHT,
        "durability": args.durability,
    }
    print(report.title)
    asyncio.run(main_async(args, report))
    # Other work on the machine moves the rates a lot; the data growth figures do not depend on it.
    report.context["load_average_1m_at_end"] = os.getloadavg()[0]
    print(report.table())
    print(f"saved {report.save(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
