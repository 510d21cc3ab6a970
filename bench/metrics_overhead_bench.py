#!/usr/bin/env python3
"""What agl-server's metrics add to the ingest hot path, per span, measured in isolation.

With ``--http-port`` the server does, per IngestSpans batch, two histogram observations and two
integer additions, and per group commit two histogram observations and a look at the commit's
events (none for spans). End-to-end rates on a shared machine swing by more than these costs, so
this measures them alone, per span at the batch and group sizes of ``store_bench.py --ingest-only``
(64 spans per batch; a group commit holds several batches), next to the server's CPU per span from
that benchmark. Prints a table and saves bench/results/metrics_overhead.json.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, saved_as

from agl_core.store.lmdb.records import Effects
from agl_core.store.span_outcomes import SpanOutcomes
from agl_server.metrics import ServerMetrics

SPANS_PER_BATCH = 64
BATCHES_PER_GROUP = 4
ROUNDS = 200_000


def per_batch_cost(metrics: ServerMetrics, outcomes: SpanOutcomes) -> float:
    """Seconds the metrics add to one IngestSpans batch (what servicer.IngestSpans does with them)."""
    started = time.perf_counter()
    for _ in range(ROUNDS):
        began = time.perf_counter()
        outcomes.stored(SPANS_PER_BATCH, 0)
        metrics.ingest_batch_spans.observe(SPANS_PER_BATCH)
        metrics.ingest_ack_seconds.observe(time.perf_counter() - began)
    return (time.perf_counter() - started) / ROUNDS


def per_group_cost(metrics: ServerMetrics) -> float:
    """Seconds the metrics add to one group commit of span batches (observer and store listener)."""
    effects = [Effects(spans=SPANS_PER_BATCH) for _ in range(BATCHES_PER_GROUP)]
    started = time.perf_counter()
    for _ in range(ROUNDS):
        metrics.observe_commit(BATCHES_PER_GROUP, 0.001, 0.0005)
        metrics.on_commit(effects)
    return (time.perf_counter() - started) / ROUNDS


def main() -> int:
    report = Report("metrics overhead on the ingest hot path")
    metrics = ServerMetrics(CollectorRegistry())
    outcomes = SpanOutcomes("grpc", logging.getLogger("bench"))
    batch = per_batch_cost(metrics, outcomes)
    group = per_group_cost(metrics)
    per_span = batch / SPANS_PER_BATCH + group / (SPANS_PER_BATCH * BATCHES_PER_GROUP)
    report.context.update(spans_per_batch=SPANS_PER_BATCH, batches_per_group=BATCHES_PER_GROUP, rounds=ROUNDS)
    report.add("per IngestSpans batch", batch * 1e6, "us")
    report.add("per group commit", group * 1e6, "us")
    report.add(
        "per span",
        per_span * 1e6,
        "us",
        target="< 5% of server CPU per span",
        met=per_span * 1e6 < 0.05 * 20,
        note="server CPU per span in store_bench --ingest-only: ~20-35 us",
    )
    print(report.table())
    path = report.save("metrics_overhead")
    print(f"\nsaved {saved_as(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
