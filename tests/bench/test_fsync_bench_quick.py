"""bench/fsync_bench.py with few syncs: it runs on this machine's temp disk and saves a p50 and a
p99 for every way of writing (the figures themselves are read from its table, never asserted)."""

from __future__ import annotations

from support.bench_runs import rows_by_name, run_bench


def test_fsync_bench_quick_times_every_way_of_writing() -> None:
    saved = run_bench(
        "fsync_bench.py", ["--syncs", "20", "--pages", "2", "--runs", "4,8"], "fsync_bench_smoke_quick", timeout=120
    )
    rows = rows_by_name(saved)
    ways = ("pages appended (the file grows)", "pages into fallocate'd blocks", "pages over written blocks")
    for way in ways:
        for q in ("p50", "p99"):
            row = rows[f"fdatasync, {way}: {q}"]
            assert row["unit"] == "us" and row["value"] > 0
    assert rows["O_DSYNC 120-byte overwrite (a meta page): p50"]["value"] > 0
    for pages in (4, 8):
        for how in ("one run", f"{pages} runs (scattered)"):
            assert rows[f"fdatasync, {pages} pages over written blocks, {how}: p50"]["value"] > 0
    assert saved["context"]["syncs"] == 20
