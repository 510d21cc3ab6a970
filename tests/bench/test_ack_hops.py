"""bench/ack_hops.py: its pairing of the server's hop times into batches (bench/hops.py) on times of
known content, and the bench itself, --quick, against real agl-servers with the probe loaded: every
hop of every variant measured and reported. The figures are read from its table, never asserted."""

from __future__ import annotations

import pytest
from support.bench_runs import load_bench_module, rows_by_name, run_bench

hops = load_bench_module("hops")


def _times(batches: int, start_ns: int = 0) -> dict[str, list[int]]:
    """Batches 2 ms apart; within each, hop k comes (k * (k + 1) / 2) us after the read."""
    out: dict[str, list[int]] = {hop: [] for hop in hops.HOPS}
    for i in range(batches):
        at = start_ns + i * 2_000_000
        for k, hop in enumerate(hops.HOPS):
            out[hop].append(at + k * (k + 1) // 2 * 1_000)
    return out


def test_each_batch_gets_its_own_hops() -> None:
    times = _times(4)
    times["read"].append(8_000_000)  # the next batch, read before the run stopped
    durations = hops.hop_durations(times, [1] * 4)
    # read -> queued 1 us, queued -> begun 2, begun -> committed 3, ...
    for k, (_, _, name) in enumerate(hops.SPANS, start=1):
        assert durations[name] == [float(k)] * 4, name
    assert durations[hops.ROUND_TRIP] == [2_000.0 - 15.0] * 3


def test_times_that_do_not_pair_up_are_refused() -> None:
    shifted = _times(5)
    del shifted["begun"][0]  # one hop's list a batch ahead of the others
    with pytest.raises(ValueError, match="out of order"):
        hops.hop_durations(shifted, [1] * 5)
    with pytest.raises(ValueError, match="a group held 2 writes"):
        hops.hop_durations(_times(5), [1, 2, 1, 1, 1])
    uneven = _times(5)
    uneven["queued"] += [10**10, 10**10 + 1]
    with pytest.raises(ValueError, match="differ by more than the batch in flight"):
        hops.hop_durations(uneven, [1] * 5)
    with pytest.raises(ValueError, match="only 1 batch"):
        hops.hop_durations(_times(1), [1])


def test_the_bench_reports_every_hop_of_every_variant() -> None:
    saved = run_bench(
        "ack_hops.py", ["--quick", "--inline-off", "--yield-to-writer"], "ack_hops_smoke_quick", timeout=600
    )
    rows = rows_by_name(saved)
    for variant in ("as shipped", "inline commits off", "yield-to-writer"):
        p50, p99 = rows[f"ack latency p50, {variant}"], rows[f"ack latency p99, {variant}"]
        assert 0 < p50["value"] <= p99["value"], variant
        assert rows[f"batches acked per second, {variant}"]["value"] > 0, variant
        for name in [span[2] for span in hops.SPANS] + [hops.ROUND_TRIP]:
            row = rows[f"{name}, {variant}"]
            assert row["value"] > 0 and row["unit"] == "us p50", (name, variant)
            assert int(row["note"].rsplit("; ", 1)[1].split()[0]) >= 10, row  # batches measured
