"""Pairing the hop times bench/probes/sitecustomize.py records (``AGL_PROBE_HOPS``) into each batch's
hops, for bench/ack_hops.py. Kept apart so that its checks can be tested without a server."""

from __future__ import annotations

HOPS = ("read", "queued", "begun", "committed", "delivered", "acked")
SPANS = [
    ("read", "queued", "read -> queued (edge check, write queued)"),
    ("queued", "begun", "queued -> begun (the writer takes it)"),
    ("begun", "committed", "begun -> committed (operation, commit, syncs)"),
    ("committed", "delivered", "committed -> delivered (the loop wakes)"),
    ("delivered", "acked", "delivered -> acked (the stream builds the ack)"),
]
ROUND_TRIP = "acked -> next read (grpc both ways, the client)"


def hop_durations(times: dict[str, list[int]], group_sizes: list[int]) -> dict[str, list[float]]:
    """Each hop's microseconds per batch from the probe's times (``perf_counter_ns``). Raises
    ValueError where the times cannot be one writer's batches in order."""
    if any(size != 1 for size in group_sizes):
        raise ValueError(f"a group held {max(group_sizes)} writes: something besides the one writer wrote")
    # The run stops with a batch anywhere on its way: keep the batches every hop saw.
    count = min(len(times[hop]) for hop in HOPS)
    if count < 2:
        raise ValueError(f"only {count} batch(es) went through every hop")
    if max(len(times[hop]) for hop in HOPS) > count + 1:
        lengths = {hop: len(times[hop]) for hop in HOPS}
        raise ValueError(f"the hops' lists differ by more than the batch in flight: {lengths}")
    out: dict[str, list[float]] = {}
    for start, end, name in SPANS:
        out[name] = [(times[end][i] - times[start][i]) / 1e3 for i in range(count)]
    out[ROUND_TRIP] = [(times["read"][i + 1] - times["acked"][i]) / 1e3 for i in range(count - 1)]
    if any(value < 0 for values in out.values() for value in values):
        raise ValueError("a batch's hops are out of order: the lists do not pair up")
    return out
