#!/usr/bin/env python3
"""The pages a group commit of span batches writes, by tree, and in how many separate runs.

On a disk where every separate write request costs a round trip (this VM's: ``python
bench/fsync_bench.py``, "scattered"), a durable commit costs about its runs of pages, not its
bytes. The store's own ingest path (``LmdbBackend.submit_span_bytes``, what agl-server's
IngestSpans calls) writes 10-span batches to distinct attempts of 64 running ones, ``g`` batches
held together as one group commit; the pages each commit wrote are read from the data file
(``lmdb_pages``: the pages its snapshot owns that the one before did not). Unlike a timing, the
counts do not depend on the machine's load: they are what a change to the store's layout moves.
The store is not synced (the pages written are the same either way).

    python bench/commit_pages_bench.py [--spans-before 100000] [--commits 30] [--out commit_pages_bench]
    python bench/commit_pages_bench.py --reserve-mb 200    # a what-if: see --reserve-mb
    python bench/commit_pages_bench.py --bare-op           # a what-if: the span operation bare
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bare_span_op
from common import Report, run_and_save
from ingest_cpu_bench import SPANS_PER_BATCH, make_batches, running_attempts
from lmdb_pages import RESERVE_LEFT_PAGES, make_reserve, page_owners, runs, unreached_reserve, written_pages

from agl_core.store import LmdbStore

GROUPS = (1, 4, 8)


def owners(backend: Any) -> dict[int, str]:
    """The owner of each page of the store's data file, as it is now (see ``lmdb_pages``)."""
    return page_owners(Path(backend.env.path()) / "data.mdb", backend.page_size)


async def one_commit(store: LmdbStore, batches: list[tuple[list[bytes], bytes]]) -> dict[str, list[int]]:
    """Write ``batches`` as one group commit; the pages it wrote, by tree."""
    backend = store.backend
    writer = backend._ensure_started()
    held, release = threading.Event(), threading.Event()

    def hold(txn: Any, effects: Any) -> None:
        held.set()
        release.wait(60)

    blocker = writer.submit(hold)  # the batches queue behind it and form the next group together
    try:
        if not await asyncio.to_thread(held.wait, 60):
            raise RuntimeError("the store's writer never ran the holding operation")
        groups = writer.groups
        pending = [backend.submit_span_bytes(raws, whole) for raws, whole in batches]
        before = owners(backend)
    finally:
        release.set()
    await blocker
    for item in pending:
        assert item.write is not None
        await item.write
        assert item.answer().accepted == SPANS_PER_BATCH
    if writer.groups != groups + 2:  # the holding operation's group, then the batches'
        raise RuntimeError(f"expected the batches in one group commit, the writer ran {writer.groups - groups - 1}")
    return written_pages(before, owners(backend))


async def measure(args: argparse.Namespace, workdir: str, report: Report) -> None:
    # Room for the reserve (a what-if) beside the store.
    store = LmdbStore(os.path.join(workdir, "data"), sync=False, map_size=(1 << 30) + 2 * (args.reserve_mb << 20))
    try:
        coords = await running_attempts(store)
        backend = store.backend
        # A store of realistic depth first: its trees' branch pages are part of every commit.
        for raws, whole in make_batches(coords, args.spans_before // SPANS_PER_BATCH):
            await backend.ingest_span_bytes(raws, whole)
        reserve_end = 0
        if args.reserve_mb:
            reserve_end = await asyncio.to_thread(make_reserve, backend.env, args.reserve_mb)
        chooser = random.Random(0)
        for size in GROUPS:
            by_tree: Counter[str] = Counter()
            total_runs = 0
            for _ in range(args.commits):
                targets = chooser.sample(coords, size)
                written = await one_commit(store, make_batches(targets, size))
                by_tree.update({tree: len(pages) for tree, pages in written.items()})
                total_runs += runs(sorted(p for pages in written.values() for p in pages))
            label = f"{size} batch{'es' if size > 1 else ''} of {SPANS_PER_BATCH} spans"
            pages = sum(by_tree.values()) / args.commits
            report.add(f"pages written per commit, {label}", pages, "pages", note=f"{pages / size:.1f} per batch")
            report.add(f"  runs of them (separate writes), {label}", total_runs / args.commits, "runs")
            for tree, count in by_tree.most_common():
                report.add(f"    {tree}, {label}", count / args.commits, "pages")
        if reserve_end:
            unreached = unreached_reserve(Path(backend.env.path()) / "data.mdb", backend.page_size, reserve_end)
            if unreached < RESERVE_LEFT_PAGES:
                raise SystemExit(f"the commits left {unreached} pages of the {args.reserve_mb} MiB reserve: give more")
            report.add("reserve pages never reached", unreached, "pages")
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans-before", type=int, default=100_000, help="spans stored before (default 100000)")
    parser.add_argument("--commits", type=int, default=30, help="commits measured per group size (default 30)")
    parser.add_argument(
        "--reserve-mb",
        type=int,
        default=0,
        help="a what-if, never a setting: free a contiguous run of this many MiB before measuring, so that the "
        "commits take their pages from it (the reserve probe of bench/ack_sensitivity.py, docs/span-acks.md); the "
        "bench fails if they use it up (the default commits write about 14 MiB)",
    )
    parser.add_argument("--out", default="commit_pages_bench", help="result file name under bench/results")
    parser.add_argument(
        "--bare-op",
        action="store_true",
        help="a what-if: the writer's span operation bare (bench/bare_span_op.py: the spans' puts and nothing else)",
    )
    args = parser.parse_args()
    if args.bare_op:
        bare_span_op.install()
    report = Report("pages a group commit of span batches writes", context=vars(args))
    return run_and_save(report, args.out, lambda workdir: measure(args, workdir, report), prefix="agl-commit-pages-")


if __name__ == "__main__":
    raise SystemExit(main())
