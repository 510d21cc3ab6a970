"""bench/span_growth_bench.py --quick against a real agl-server: an attempt grows past 10,000 spans,
every band it passed gets its rows, the false positives are read from the server's /metrics, and
every resent span is found as a duplicate, on the server that took them and after restarts on the
same data (filters rebuilt from the span-id logs). A smoke test of
the benchmark; the latencies are read from its table, never asserted. It saves to an absolute path,
which the benches accept for ``--out``."""

from __future__ import annotations

from pathlib import Path

from support.bench_runs import rows_by_name, run_bench


def test_span_growth_bench_quick_grows_an_attempt_and_finds_every_resend(tmp_path: Path) -> None:
    saved = run_bench("span_growth_bench.py", ["--quick"], str(tmp_path / "span_growth"), timeout=300)
    assert saved["context"]["spans_per_attempt"] == 12_000
    rows = rows_by_name(saved)
    for band in ("0-10k", "10k-50k"):
        assert rows[f"ack max, attempt holding {band} spans"]["value"] > 0, band
    assert "attempt holding 50k-100k spans" not in " ".join(rows)
    for name in ("resent spans not found as duplicates", "resent spans not found as duplicates after a restart"):
        resent = rows[name]
        assert resent["value"] == 0 and resent["met"] is True, name
    first = "ack of the first write after a restart, attempt holding 12000 spans"
    assert 0 < rows[f"{first}, median"]["value"] <= rows[f"{first}, max"]["value"]
    assert rows[f"{first}, median"]["note"] == "3 first writes: 1 attempt(s), 3 restarts"
    assert rows["spans acked per second"]["value"] > 0
    # A count scraped from /metrics: the row is there and holds a count, not a placeholder.
    checks = rows["fresh span ids looked up in the log (false positives)"]
    assert checks["unit"] == "ids" and checks["value"] >= 0 and checks["note"].endswith("per million fresh ids")
