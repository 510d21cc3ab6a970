"""bench/ingest_cpu_bench.py with small sizes: it runs, every batch is stored whole (the bench
asserts each batch's ``accepted``), and it saves its rows (the figures themselves are read from its
table, never asserted)."""

from __future__ import annotations

from support.bench_runs import rows_by_name, run_bench


def test_ingest_cpu_bench_quick_runs_and_reports_each_thread() -> None:
    saved = run_bench(
        "ingest_cpu_bench.py", ["--batches", "300", "--rounds", "1"], "ingest_cpu_bench_smoke_quick", timeout=180
    )
    rows = rows_by_name(saved)
    for name in ("store writer thread, CPU per batch", "event loop thread, CPU per batch"):
        assert rows[name]["unit"] == "us" and rows[name]["value"] >= 0
    assert rows["operations per group commit"]["value"] >= 1
    assert rows["spans stored per second (wall, all rounds)"]["value"] > 0
    assert saved["context"]["batches"] == 300
