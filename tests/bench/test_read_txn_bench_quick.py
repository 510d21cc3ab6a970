"""bench/read_txn_bench.py with small sizes: it runs, saves its rows, and the failed reads it keeps
alive hold no reader slots (the figures themselves are read from its table, never asserted)."""

from __future__ import annotations

from support.bench_runs import rows_by_name, run_bench


def test_read_txn_bench_quick_runs_and_holds_no_slots() -> None:
    saved = run_bench(
        "read_txn_bench.py", ["--calls", "400", "--rounds", "1"], "read_txn_bench_smoke_quick", timeout=120
    )
    rows = rows_by_name(saved)
    for name in ("GetRollout", "GetResources, none added (NOT_FOUND)", "QuerySpans, 10 spans"):
        assert rows[name]["value"] > 0 and rows[name]["unit"] == "us/call"
    slots = rows["reader slots held at the end"]
    assert slots["met"] is True and slots["value"] <= 4 and slots["note"] == "400 failed reads kept alive"
