"""bench/ts_codec_bench.py with few batches: it builds the TS client, times protobuf-es's encoding
of each batch shape and saves a row for each (the figures themselves are read from its table, never
asserted)."""

from __future__ import annotations

from support.bench_runs import rows_by_name, run_bench


def test_ts_codec_bench_quick_saves_every_shape() -> None:
    saved = run_bench("ts_codec_bench.py", ["--batches", "200"], "ts_codec_bench_quick", timeout=300)
    rows = rows_by_name(saved)
    sizes = {}
    for shape in ("LLM-call spans", "text attributes only", "token ids only", "no attributes"):
        (row,) = [row for name, row in rows.items() if name.startswith(f"toBinary: {shape}")]
        assert row["value"] > 0 and row["unit"] == "us/batch", shape
        sizes[shape] = int(row["note"].removesuffix(" bytes"))
    # The LLM batch is its two halves' attributes on the same spans (each span's length prefix may
    # take a byte more than in the smaller batches: at most ten bytes apart).
    halves = sizes["text attributes only"] + sizes["token ids only"] - sizes["no attributes"]
    assert 0 <= halves - sizes["LLM-call spans"] <= 10, sizes
