"""bench/span_query_bench.py --quick against a real agl-server: every way of reading a batch's spans
returns every span (the bench asserts it) and each gets its rows. A smoke test of the benchmark;
the figures are read from its table, never asserted."""

from __future__ import annotations

from support.bench_runs import rows_by_name, run_bench

OUT = "span_query_bench_smoke_quick"  # *_quick.json is ignored by git


def test_span_query_bench_quick_reads_every_span_every_way() -> None:
    rows = rows_by_name(run_bench("span_query_bench.py", ["--quick"], OUT, timeout=300))
    for way in ("query_spans per rollout, one at a time", "query_spans per rollout, all at once",
                "query_spans_of_rollouts (rollout_ids)"):  # fmt: skip
        batch = rows[f"{way}: the batch"]
        assert batch["unit"] == "ms" and batch["value"] > 0, way
        assert rows[f"server CPU per rollout read ({way.split(' (')[0]})"]["unit"] == "ms"
