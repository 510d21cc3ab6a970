"""bench/span_storage_bench.py --quick: every span size and writing pattern gets its row, and no
span takes less data file than its own bytes (nothing is compressed, so a figure below 1x would be
a measuring mistake). A smoke test of the benchmark; how much more each takes is read from its
table, not asserted."""

from __future__ import annotations

from support.bench_runs import rows_by_name, run_bench


def test_span_storage_bench_quick_measures_every_size() -> None:
    saved = run_bench("span_storage_bench.py", ["--quick"], "span_storage_bench_smoke_quick", timeout=300)
    rows = rows_by_name(saved)
    for size in ("300", "600", "800", "1,100", "2,100", "4,100", "10,000"):
        for attempts in (1, 64):
            row = rows[f"data file per {size}-byte span, {attempts} attempt(s)"]
            assert row["value"] >= int(size.replace(",", "")), row
            assert row["note"].endswith("x") and float(row["note"][:-1]) >= 1.0, row
    for size in ("1,100", "4,100"):
        row = rows[f"after churn: data file per live {size}-byte span"]
        assert row["value"] >= int(size.replace(",", "")) and "after 6" in row["note"], row
