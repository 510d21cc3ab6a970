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


def _record(read: int, group: int, groups: list[list[int]]) -> dict[str, int]:
    """A batch read at ``read`` us, queued 5 us later, in ``group``; delivered 10 us after the group's
    end and acked 20 us after that. Times in ns."""
    begun, committed = groups[group][0], groups[group][1]
    return {
        "read": read * 1_000,
        "queued": (read + 5) * 1_000,
        "begun": begun,
        "committed": committed,
        "delivered": committed + 10_000,
        "acked": committed + 30_000,
        "group": group,
    }


# Two groups, back to back: 100-400 us (commit 200 us of it) and 420-900 us (commit 300 us).
GROUPS = [[100_000, 400_000, 1, 200_000], [420_000, 900_000, 2, 300_000]]


def test_many_writers_hops_are_kept_by_batch_and_split_where_they_waited() -> None:
    # The first batch starts the first group; the next two are queued while it runs (at 205 and
    # 305 us) and share the second group.
    batches = [_record(90, 0, GROUPS), _record(200, 1, GROUPS), _record(300, 1, GROUPS)]
    durations = hops.batch_hops(batches, GROUPS)
    assert durations[hops.SPANS[0][2]] == [5.0, 5.0, 5.0]
    assert durations[hops.SPANS[1][2]] == [5.0, 215.0, 115.0]  # queued -> begun
    assert durations[hops.BEHIND] == [0.0, 195.0, 95.0]  # the rest of the first group
    assert durations[hops.AFTER] == [5.0, 20.0, 20.0]  # its end to the second group's start
    assert durations[hops.OPERATIONS] == [100.0, 180.0, 180.0]
    assert durations[hops.COMMIT] == [200.0, 300.0, 300.0]
    assert durations[hops.SERVER_TOTAL] == [340.0, 730.0, 630.0]
    assert durations[hops.GROUP_WRITES] == [1.0, 2.0, 2.0]
    chosen, tail = hops.slowest(durations, share=0.34)  # one batch of three: the slowest
    assert chosen == [1]
    assert tail[hops.BEHIND] == 195.0 and tail[hops.SERVER_TOTAL] == 730.0


def test_many_writers_records_that_cannot_be_right_are_refused() -> None:
    batches = [_record(90, 0, GROUPS), _record(200, 1, GROUPS)]
    with pytest.raises(ValueError, match="two groups overlap"):
        hops.batch_hops(batches, [GROUPS[0], [300_000, 900_000, 2, 300_000]])
    unordered = [dict(batches[0]), batches[1]]
    unordered[0]["queued"] = unordered[0]["begun"] + 1  # queued after its group began
    with pytest.raises(ValueError, match="batch 0's hops are out of order"):
        hops.batch_hops(unordered, GROUPS)
    partial = [batches[0], {key: value for key, value in batches[1].items() if key != "acked"}]
    with pytest.raises(ValueError, match="batch 1 has no acked time"):
        hops.batch_hops(partial, GROUPS)
    with pytest.raises(ValueError, match="only 1 batch"):
        hops.batch_hops(batches[:1], GROUPS)


def test_the_warm_up_batches_are_left_out() -> None:
    times = _times(6)  # reads 2 ms apart
    kept, sizes = hops.lists_past(times, [1] * 6, warm_up_ns=5_000_000)
    assert kept["read"] == times["read"][3:] and kept["acked"] == times["acked"][3:]
    assert sizes == [1] * 3
    records = [_record(90, 0, GROUPS), _record(200, 1, GROUPS), _record(300, 1, GROUPS)]
    assert hops.records_past(records, warm_up_ns=110_000) == records[1:]  # reads from 200 us kept


def test_the_bench_reports_where_eight_writers_wait() -> None:
    saved = run_bench("ack_hops.py", ["--quick", "--writers", "8"], "ack_hops_writers_smoke_quick", timeout=600)
    rows = rows_by_name(saved)
    assert 0 < rows["ack latency p50, as shipped"]["value"] <= rows["ack latency p99, as shipped"]["value"]
    for name in [hops.SPANS[1][2], hops.BEHIND, hops.SPANS[2][2], hops.OPERATIONS, hops.COMMIT, hops.SERVER_TOTAL]:
        row = rows[f"{name.strip()}, as shipped"]
        assert row["unit"] == "us p50" and int(row["note"].rsplit("; ", 1)[1].split()[0]) >= 10, row
        assert rows[f"slowest 1%: {name}, as shipped"]["value"] > 0, name
    # Eight writers share group commits: more than one write a group on average.
    assert rows["writes per group, as shipped"]["value"] > 1
    # The tail is at least as slow as the median, hop sums and all.
    total = hops.SERVER_TOTAL
    assert rows[f"slowest 1%: {total}, as shipped"]["value"] >= rows[f"{total}, as shipped"]["value"]
