"""bench/go_codec_bench.py with few runs: it builds and runs the Go client codec's benchmarks and
saves a row for each way of encoding, with the bytes it allocated (the figures themselves are read
from its table, never asserted)."""

from __future__ import annotations

from support.bench_runs import rows_by_name, run_bench


def test_go_codec_bench_quick_saves_every_row() -> None:
    saved = run_bench("go_codec_bench.py", ["--benchtime", "20x"], "go_codec_bench_quick", timeout=300)
    rows = rows_by_name(saved)
    for way, hows in (
        ("marshal", ("protobuf's reflection", "gRPC's codec", "the client's codec")),
        ("unmarshal", ("protobuf's reflection", "the client's codec")),
    ):
        for how in hows:
            (row,) = [row for name, row in rows.items() if name.startswith(f"{way}: {how} (")]
            assert row["value"] > 0 and row["unit"] == "us/batch"
            allocated = rows[f"{way}: {how}: allocated"]
            assert allocated["unit"] == "bytes/batch" and allocated["value"] >= 0
