#!/usr/bin/env python3
"""Span storage benchmark: bytes of data file per stored span, by span size and writing pattern.

Spans of a given serialized size go into the embedded store (``LmdbStore``, unsynced: the layout
on disk is the same) in 10-span writes, from one attempt or round-robin over 64 (as concurrent
runners write), then:

- data file per span: the pages the store used for them (LMDB's last page, less what the empty store
  used) divided by the spans, and its ratio to the spans' own bytes;
- after churn: write a round of rollouts, delete the round written three rounds earlier, many times
  over (as retention does); the data file per span still stored at the end, where the file stops
  growing once deleted pages are reused.

Pages, not wall-clock time: the figures are the same on any machine.

    python bench/span_storage_bench.py [--quick] [--spans 20000] [--cycles 30] [--out span_storage_bench]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, run_and_save

from agl_core import LmdbStore, new_span

SPANS_PER_WRITE = 10
# Serialized sizes of the spans measured: a tool call, an LLM call with a short prompt
# (bench/common.llm_call_span is 1.1 KB), and LLM calls with longer ones.
SPAN_BYTES = (300, 600, 800, 1_100, 2_100, 4_100, 10_000)
CHURN_SPAN_BYTES = (1_100, 4_100)


def _raws(rollout_id: str, attempt_id: str, size: int, count: int) -> list[bytes]:
    """``count`` spans of ``size`` bytes serialized (within a few bytes), fresh span ids."""
    bare = len(new_span("s", rollout_id=rollout_id, attempt_id=attempt_id, attributes={"p": ""}).SerializeToString())
    pad = max(0, size - bare - 3)  # the attribute's length prefix grows with it
    return [
        new_span("s", rollout_id=rollout_id, attempt_id=attempt_id, attributes={"p": "x" * pad}).SerializeToString()
        for _ in range(count)
    ]


def _pages_bytes(store: LmdbStore) -> int:
    return (store.backend.env.info()["last_pgno"] + 1) * store.backend.env.stat()["psize"]


async def _write_rollouts(store: LmdbStore, tag: str, rollouts: int, spans: int, size: int) -> tuple[list[str], int]:
    """``rollouts`` rollouts of ``spans`` spans each, their 10-span writes round-robin over the
    rollouts; returns their ids and the spans' own bytes."""
    started = [await store.start_rollout(f"{tag}-{i}") for i in range(rollouts)]
    own = 0
    for write in range(spans // SPANS_PER_WRITE):
        rollout = started[write % rollouts]
        raws = _raws(rollout.rollout_id, rollout.attempt.attempt_id, size, SPANS_PER_WRITE)  # type: ignore[union-attr]
        response = await store.backend.ingest_span_bytes(raws)
        assert response.accepted == len(raws), response
        own += sum(map(len, raws))
    for rollout in started:
        await store.update_attempt(rollout.rollout_id, rollout.attempt.attempt_id, status="succeeded")  # type: ignore[union-attr]
    return [r.rollout_id for r in started], own


async def layout(workdir: str, size: int, attempts: int, spans: int) -> tuple[float, float]:
    """(data file bytes per span, ratio to the spans' own bytes) for ``spans`` spans of ``size``."""
    store = LmdbStore(os.path.join(workdir, f"layout-{size}-{attempts}"), sync=False)
    try:
        empty = _pages_bytes(store)
        _, own = await _write_rollouts(store, "r", attempts, spans, size)
        used = _pages_bytes(store) - empty
        return used / spans, used / own
    finally:
        await store.close()


async def churn(workdir: str, size: int, cycles: int, spans_per_cycle: int) -> tuple[float, list[float]]:
    """Data file bytes per live span after ``cycles`` rounds of write-then-delete-the-oldest (three
    rounds live), and the file's size in MB after each round."""
    store = LmdbStore(os.path.join(workdir, f"churn-{size}"), sync=False)
    live: list[list[str]] = []
    sizes: list[float] = []
    try:
        for cycle in range(cycles):
            ids, _ = await _write_rollouts(store, f"c{cycle}", 20, spans_per_cycle, size)
            live.append(ids)
            if len(live) > 3:
                await store.delete_rollouts(live.pop(0))
            sizes.append(_pages_bytes(store) / 1e6)
        stored = (await store.stats())["spans"]
        return _pages_bytes(store) / stored, sizes
    finally:
        await store.close()


async def run(args: argparse.Namespace, report: Report, workdir: str) -> None:
    for size in SPAN_BYTES:
        for attempts in (1, 64):
            per_span, ratio = await layout(workdir, size, attempts, args.spans)
            report.add(
                f"data file per {size:,}-byte span, {attempts} attempt(s)", per_span, "bytes", note=f"{ratio:.2f}x"
            )
    for size in CHURN_SPAN_BYTES:
        per_span, sizes = await churn(workdir, size, args.cycles, args.spans // 10)
        growth = f"file {sizes[3]:.1f} MB after 4 rounds, {sizes[-1]:.1f} MB after {len(sizes)}"
        report.add(f"after churn: data file per live {size:,}-byte span", per_span, "bytes", note=growth)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the benchmark itself")
    parser.add_argument("--spans", type=int, default=20_000, help="spans per layout measure (default 20000)")
    parser.add_argument("--cycles", type=int, default=30, help="write/delete rounds of the churn (default 30)")
    parser.add_argument("--out", default="span_storage_bench", help="result file name under bench/results")
    args = parser.parse_args()
    if args.quick:
        args.spans, args.cycles = 2_000, 6
    report = Report("span storage: data file bytes per span", context=vars(args))
    print(report.title)
    return run_and_save(report, args.out, lambda workdir: run(args, report, workdir), prefix="agl-span-storage-")


if __name__ == "__main__":
    raise SystemExit(main())
