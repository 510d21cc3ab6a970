#!/usr/bin/env python3
"""CPU time the embedded store spends per span batch, by thread: the store's writer and the event loop.

Span batches (10 realistic ~1 KB LLM-call spans each, over 64 running attempts) go through the
store's own ingest path (``LmdbBackend.ingest_span_bytes``, the one agl-server's IngestSpans
calls), ``--inflight`` at a time so they share group commits as a loaded server's do. Without gRPC,
another process or the disk in the measure (the store runs without sync unless ``--sync``), the
CPU time of each thread is a steadier figure on a noisy machine than a latency: it is what a
change to the writer's or the loop's Python costs or saves. Best of ``--rounds``.

``--compiled``: the same with the writer's span path compiled by mypyc (``bench/compiled_floor.py``
builds it), agl_core imported from that build. ``--bare-op``: a what-if, the writer's span operation
reduced to the spans' puts (``bench/bare_span_op.py``): what agl's operation costs is the difference.

    python bench/ingest_cpu_bench.py [--batches 4000] [--inflight 4] [--rounds 3] [--sync] [--compiled] [--bare-op]
                                     [--out ingest_cpu_bench]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
if "--compiled" in sys.argv:  # before anything imports agl_core: from the compiled build, not this checkout
    import compiled_floor

    sys.path.insert(0, str(compiled_floor.build()))
    os.environ["AGL_SPAN_LOOP"] = "python"  # the mypyc-compiled span_write, not the Cython loop
import bare_span_op
from common import Report, llm_call_span, run_and_save

from agl_core.proto import store_pb2 as s
from agl_core.store import LmdbStore
from agl_core.store.lmdb import span_path, span_write

SPANS_PER_BATCH = 10
ATTEMPTS = 64


def thread_cpu(native_id: int) -> float:
    """Seconds of CPU (user + system) the thread ``native_id`` of this process has used."""
    for thread in psutil.Process().threads():
        if thread.id == native_id:
            return float(thread.user_time + thread.system_time)
    raise LookupError(f"thread {native_id} is not a thread of this process")


def make_batches(coords: list[tuple[str, str]], count: int) -> list[tuple[list[bytes], bytes]]:
    """``count`` batches as IngestSpans delivers them: the spans' bytes and the request's."""
    batches = []
    for n in range(count):
        rollout_id, attempt_id = coords[n % len(coords)]
        spans = [llm_call_span(rollout_id, attempt_id, i) for i in range(SPANS_PER_BATCH)]
        for span in spans:
            span.span_id = os.urandom(8)
        batches.append(
            ([span.SerializeToString() for span in spans], s.IngestSpansRequest(spans=spans).SerializeToString())
        )
    return batches


async def running_attempts(store: LmdbStore) -> list[tuple[str, str]]:
    """(rollout id, attempt id) of ``ATTEMPTS`` rollouts started in ``store``."""
    coords = []
    for i in range(ATTEMPTS):
        rollout = await store.start_rollout({"target": i})
        assert rollout.attempt is not None
        coords.append((rollout.rollout_id, rollout.attempt.attempt_id))
    return coords


async def one_round(store: LmdbStore, batches: list[tuple[list[bytes], bytes]], inflight: int) -> tuple[float, float]:
    """Writer and loop CPU seconds per batch for storing ``batches`` once."""
    backend = store.backend
    writer = backend._ensure_started()
    writer_id, loop_id = writer._thread.native_id, threading.get_native_id()
    assert writer_id is not None
    queue = iter(batches)

    async def worker() -> None:
        for raws, whole in queue:
            response = await backend.ingest_span_bytes(raws, whole)
            assert response.accepted == len(raws), response

    writer_before, loop_before = thread_cpu(writer_id), thread_cpu(loop_id)
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return (
        (thread_cpu(writer_id) - writer_before) / len(batches),
        (thread_cpu(loop_id) - loop_before) / len(batches),
    )


async def measure(args: argparse.Namespace, workdir: str, report: Report) -> None:
    store = LmdbStore(os.path.join(workdir, "data"), sync=args.sync)
    try:
        coords = await running_attempts(store)
        # Fresh span ids every round: a resent id would be a duplicate, stored once.
        rounds = [make_batches(coords, args.batches) for _ in range(args.rounds)]
        await one_round(store, make_batches(coords, min(200, args.batches)), args.inflight)  # warm-up
        started = time.perf_counter()
        results = [await one_round(store, batches, args.inflight) for batches in rounds]
        wall = time.perf_counter() - started
        writer = min(r[0] for r in results) * 1e6
        loop = min(r[1] for r in results) * 1e6
        groups, operations = store.backend.writer_counts
        durability = "durable" if args.sync else "no sync"
        note = f"{SPANS_PER_BATCH} spans/batch, {args.inflight} in flight, {durability}"
        report.add("store writer thread, CPU per batch", writer, "us", note=note)
        report.add("  per span", writer / SPANS_PER_BATCH, "us")
        report.add("event loop thread, CPU per batch", loop, "us", note="the store's ingest call; no gRPC")
        report.add("operations per group commit", operations / max(groups, 1), "ops")
        report.add(
            "spans stored per second (wall, all rounds)", args.rounds * args.batches * SPANS_PER_BATCH / wall, "spans/s"
        )
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=4000, help="batches per round (default 4000)")
    parser.add_argument("--inflight", type=int, default=4, help="batches submitted at once (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best is reported (default 3)")
    parser.add_argument("--sync", action="store_true", help="durable commits (fsync), as agl-server's default")
    parser.add_argument(
        "--compiled", action="store_true", help="the writer's span path compiled by mypyc (bench/compiled_floor.py)"
    )
    parser.add_argument("--out", default="ingest_cpu_bench", help="result file name under bench/results")
    parser.add_argument(
        "--bare-op",
        action="store_true",
        help="a what-if: the writer's span operation bare (bench/bare_span_op.py: the spans' puts and nothing else)",
    )
    args = parser.parse_args()
    if args.bare_op:
        bare_span_op.install()
    compiled = span_write.__file__.endswith(".so")
    if compiled != args.compiled:
        raise SystemExit(f"--compiled is {args.compiled}, but the span path is {span_write.__file__}")
    report = Report(
        "embedded store ingest CPU by thread",
        context={**vars(args), "span_write": span_write.__file__, "span_loop": span_path.choose()[0]},
    )
    return run_and_save(report, args.out, lambda workdir: measure(args, workdir, report), prefix="agl-ingest-cpu-")


if __name__ == "__main__":
    raise SystemExit(main())
