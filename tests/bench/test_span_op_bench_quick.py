"""bench/span_op_bench.py with small sizes: both ways store every batch whole (the bench asserts
each batch's ``accepted``), they alternate as many rounds as asked, and the rows are saved (the
figures themselves are read from its table, never asserted)."""

from __future__ import annotations

import shutil

import pytest
from support.bench_runs import rows_by_name, run_bench

from agl_core.store import validation


def test_span_op_bench_quick_times_both_ways_on_one_thread() -> None:
    if validation.batch_span_places(b"") is None:
        if shutil.which("cc") is not None:
            raise AssertionError("pip install -e . should have built agl_core/store/wire_check (a C compiler is here)")
        pytest.skip("no C compiler here, so there is no compiled way to compare")
    saved = run_bench(
        "span_op_bench.py", ["--batches", "200", "--rounds", "2"], "span_op_bench_smoke_quick", timeout=600
    )
    rows = rows_by_name(saved)
    for way in ("places", "parsed"):
        hand = rows[f"event loop's hand-over (placeable_spans), {way}"]["value"]
        op = rows[f"store writer's operation, {way}"]["value"]
        assert hand > 0 and op > 0
        assert rows[f"both, {way}"]["value"] >= hand + op - 1e-9  # the best round of the sum, not the sum of bests
        assert len(saved["context"]["rounds_us"][way]) == 2
