"""bench/edge_check_bench.py with small sizes: it runs and saves a row for each way a span batch is
checked, the compiled ones included where the extension is built (the figures themselves are read
from its table, never asserted)."""

from __future__ import annotations

from support.bench_runs import rows_by_name, run_bench

from agl_server import span_checks


def test_edge_check_bench_quick_times_every_check() -> None:
    saved = run_bench("edge_check_bench.py", ["--calls", "200", "--rounds", "1"], "edge_check_bench_quick", timeout=120)
    rows = rows_by_name(saved)
    names = ["spans readable: parse", "ids placeable: each span's header (Python)"]
    if span_checks.WireCheck is not None:
        names += [
            "spans readable: compiled walk first",
            "ids placeable: read from the batch's bytes (compiled)",
            "places: headers parsed, ids read from the bytes",
            "places: read from the batch's bytes (compiled)",
        ]
    else:
        assert "skipped: wire" in saved["context"]
    for name in names:
        assert rows[name]["value"] > 0 and rows[name]["unit"] == "us/batch", name
    assert saved["context"]["spans_per_batch"] == 10 and saved["context"]["batch_bytes"] > 1000
