"""bench/ingest_cpu_bench.py with small sizes: it runs, every batch is stored whole (the bench
asserts each batch's ``accepted``), and it saves its rows (the figures themselves are read from its
table, never asserted)."""

from __future__ import annotations

import pytest
from support.bench_runs import rows_by_name, run_bench


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "mypyc"])
def test_ingest_cpu_bench_quick_runs_and_reports_each_thread(compiled: bool) -> None:
    """With --compiled, the store's span path is the mypyc build's (bench/compiled_floor.py): the
    bench refuses to run if agl_core's span_write is not the compiled module, and every batch is
    still stored whole."""
    flags = ["--batches", "300", "--rounds", "1", *(["--compiled"] if compiled else [])]
    saved = run_bench("ingest_cpu_bench.py", flags, f"ingest_cpu_bench_smoke_{compiled}_quick", timeout=900)
    assert saved["context"]["span_write"].endswith(".so") == compiled
    rows = rows_by_name(saved)
    for name in ("store writer thread, CPU per batch", "event loop thread, CPU per batch"):
        assert rows[name]["unit"] == "us" and rows[name]["value"] >= 0
    assert rows["operations per group commit"]["value"] >= 1
    assert rows["spans stored per second (wall, all rounds)"]["value"] > 0
    assert saved["context"]["batches"] == 300
