#!/usr/bin/env python3
"""What a durable commit's syncs cost on a disk: the floor under every acknowledged write.

A durable LMDB commit writes its pages, syncs them (``fdatasync``), then writes the meta page
through a descriptor opened with ``O_DSYNC``. This times the same calls on a file in ``--dir``
(put it on the disk of the data directory), microseconds per sync:

- pages appended at the end of a growing file, as LMDB writes the pages a growing store adds: the
  filesystem also records the new size and blocks in its journal, so the sync flushes that too;
- pages written into blocks already allocated with ``fallocate`` (their extents still need to be
  marked written, in the journal);
- pages overwritten in blocks already written and synced: the data alone;
- a 120-byte ``O_DSYNC`` write over the start of the file, as LMDB writes its meta page;
- 4 to 40 pages over written blocks, in one run or each page in a run of its own at a random place
  (``--runs``): LMDB writes each run of consecutive dirty pages with one call, and a commit's pages
  are mostly scattered (``bench/commit_pages_bench.py`` counts them); a disk that serves each
  separate write as a round trip of its own syncs such a commit many times slower.

    python bench/fsync_bench.py [--dir /tmp] [--syncs 400] [--pages 6] [--runs 4,8,20,40] [--out fsync_bench]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, percentile

PAGE = 4096


def _zero_fill(fd: int, size: int) -> None:
    zeros = bytes(1 << 20)
    for offset in range(0, size, len(zeros)):
        os.pwrite(fd, zeros, offset)


@contextlib.contextmanager
def _scratch_file(directory: str) -> Iterator[tuple[int, str]]:
    """A new file in ``directory``, open for writing: its descriptor and path; removed afterwards."""
    fd, path = tempfile.mkstemp(prefix="agl-fsync-", dir=directory)
    try:
        yield fd, path
    finally:
        os.close(fd)
        os.unlink(path)


def _timed_sync(fd: int) -> float:
    started = time.perf_counter()
    os.fdatasync(fd)
    return time.perf_counter() - started


def time_syncs(directory: str, syncs: int, pages: int, prepare: Callable[[int, int], None] | None) -> list[float]:
    """Seconds of each ``fdatasync`` after writing ``pages`` new pages, ``syncs`` times, into a file
    made ready by ``prepare(fd, size)`` (None: the file grows with each write)."""
    with _scratch_file(directory) as (fd, _):
        if prepare is not None:
            prepare(fd, syncs * pages * PAGE)
        os.fsync(fd)
        page = os.urandom(PAGE)
        timings = []
        for n in range(syncs):
            for k in range(pages):
                os.pwrite(fd, page, (n * pages + k) * PAGE)
            timings.append(_timed_sync(fd))
        return timings


def time_runs(directory: str, syncs: int, counts: list[int]) -> dict[tuple[int, bool], list[float]]:
    """Seconds of each ``fdatasync`` after writing so many pages (each of ``counts``) over written
    blocks of a 64 MiB file, ``syncs`` times: as one run at a random place, or scattered, each at a
    random place of its own and written in order of place, as LMDB writes a commit's pages."""
    with _scratch_file(directory) as (fd, _):
        places = (64 << 20) // PAGE
        _zero_fill(fd, places * PAGE)
        os.fsync(fd)
        chooser = random.Random(0)
        timings: dict[tuple[int, bool], list[float]] = {}
        for pages in counts:
            for scattered in (False, True):
                taken = timings[pages, scattered] = []
                for _ in range(syncs):
                    if scattered:
                        for place in sorted(chooser.sample(range(places), pages)):
                            os.pwrite(fd, os.urandom(PAGE), place * PAGE)
                    else:
                        os.pwrite(fd, os.urandom(pages * PAGE), chooser.randrange(places - pages) * PAGE)
                    taken.append(_timed_sync(fd))
        return timings


def time_meta_writes(directory: str, syncs: int) -> list[float]:
    """Seconds of each 120-byte ``O_DSYNC`` overwrite at offset 32 of a synced two-page file."""
    with _scratch_file(directory) as (fd, path):
        os.pwrite(fd, bytes(2 * PAGE), 0)
        os.fsync(fd)
        meta = os.open(path, os.O_WRONLY | os.O_DSYNC)
        try:
            record = os.urandom(120)
            timings = []
            for _ in range(syncs):
                started = time.perf_counter()
                os.pwrite(meta, record, 32)
                timings.append(time.perf_counter() - started)
            return timings
        finally:
            os.close(meta)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="a directory on the disk to measure")
    parser.add_argument("--syncs", type=int, default=400, help="syncs per way of writing (default 400)")
    parser.add_argument("--pages", type=int, default=6, help="4 KiB pages written before each sync (default 6)")
    parser.add_argument(
        "--runs", default="4,8,20,40", help="page counts synced in one run and scattered (default 4,8,20,40)"
    )
    parser.add_argument("--out", default="fsync_bench", help="result file name under bench/results")
    args = parser.parse_args()
    if not hasattr(os, "fdatasync"):
        raise SystemExit("fsync_bench needs os.fdatasync (Linux)")
    report = Report("what a durable commit's syncs cost", context=vars(args))
    ways: list[tuple[str, Callable[[int, int], None] | None]] = [
        ("appended (the file grows)", None),
        ("into fallocate'd blocks", lambda fd, size: os.posix_fallocate(fd, 0, size)),
        ("over written blocks", _zero_fill),
    ]
    for name, prepare in ways:
        timings = time_syncs(args.dir, args.syncs, args.pages, prepare)
        note = f"{args.pages} pages per sync"
        report.add(f"fdatasync, pages {name}: p50", percentile(timings, 50) * 1e6, "us", note=note)
        report.add(f"fdatasync, pages {name}: p99", percentile(timings, 99) * 1e6, "us")
    timings = time_meta_writes(args.dir, args.syncs)
    report.add("O_DSYNC 120-byte overwrite (a meta page): p50", percentile(timings, 50) * 1e6, "us")
    report.add("O_DSYNC 120-byte overwrite (a meta page): p99", percentile(timings, 99) * 1e6, "us")
    for (pages, scattered), timings in time_runs(args.dir, args.syncs, [int(n) for n in args.runs.split(",")]).items():
        how = f"{pages} runs (scattered)" if scattered else "one run"
        report.add(f"fdatasync, {pages} pages over written blocks, {how}: p50", percentile(timings, 50) * 1e6, "us")
    print(report.table())
    print(f"\nsaved {report.save(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
