"""Pairing the hop times bench/probes/sitecustomize.py records into each batch's hops, for
bench/ack_hops.py: one writer's lists (``AGL_PROBE_HOPS``) by position, many writers' records
(``AGL_PROBE_BATCH_HOPS``) batch by batch. Kept apart so that its checks can be tested without a
server."""

from __future__ import annotations

import bisect
import itertools

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


# Many writers (AGL_PROBE_BATCH_HOPS): each batch's hops from its own record. "queued -> begun" is
# also split where the write was queued while another group ran: the rest of that group, then what
# followed until its own group began (groups queued ahead of it, the writer taking it); and
# "begun -> committed" into the group's operations and LMDB's commit with its syncs.
BEHIND = "  of it: the rest of the group running when it was queued"
AFTER = "  of it: from that group's end to its own group's start"
OPERATIONS = "  of it: the group's operations"
COMMIT = "  of it: the group's commit (its syncs)"
GROUP_WRITES = "writes in its group"
SERVER_TOTAL = "read -> acked (the server's part)"


def batch_hops(batches: list[dict[str, int]], groups: list[list[int]]) -> dict[str, list[float]]:
    """Each hop's microseconds per batch (the keys: SPANS' names, BEHIND, AFTER, OPERATIONS, COMMIT,
    SERVER_TOTAL; and GROUP_WRITES, not a time), from the probe's records (``perf_counter_ns``) and
    its groups (begun, committed, writes, the commit's ns). Raises ValueError where a record lacks a
    hop, its hops are out of order, or the groups overlap."""
    if len(batches) < 2:
        raise ValueError(f"only {len(batches)} batch(es) went through every hop")
    starts = [group[0] for group in groups]
    if any(later[0] < earlier[1] for earlier, later in itertools.pairwise(groups)):
        raise ValueError("two groups overlap: the store runs one group at a time")
    out: dict[str, list[float]] = {name: [] for _, _, name in SPANS}
    for name in (BEHIND, AFTER, OPERATIONS, COMMIT, SERVER_TOTAL, GROUP_WRITES):
        out[name] = []
    for number, batch in enumerate(batches):
        missing = [hop for hop in HOPS if hop not in batch]
        if missing:
            raise ValueError(f"batch {number} has no {', '.join(missing)} time")
        times = [batch[hop] for hop in HOPS]
        if any(later < earlier for earlier, later in itertools.pairwise(times)):
            raise ValueError(f"batch {number}'s hops are out of order: {dict(zip(HOPS, times, strict=True))}")
        for start, end, name in SPANS:
            out[name].append((batch[end] - batch[start]) / 1e3)
        # The group that had begun last when this write was queued, if it was still running then.
        running = bisect.bisect_right(starts, batch["queued"]) - 1
        behind = 0
        if running >= 0 and running != batch["group"] and groups[running][1] > batch["queued"]:
            behind = groups[running][1] - batch["queued"]
        out[BEHIND].append(behind / 1e3)
        out[AFTER].append((batch["begun"] - batch["queued"] - behind) / 1e3)
        _, _, writes, commit = groups[batch["group"]]
        out[OPERATIONS].append((batch["committed"] - batch["begun"] - commit) / 1e3)
        out[COMMIT].append(commit / 1e3)
        out[GROUP_WRITES].append(float(writes))
        out[SERVER_TOTAL].append((batch["acked"] - batch["read"]) / 1e3)
    return out


def slowest(durations: dict[str, list[float]], share: float = 0.01) -> tuple[list[int], dict[str, float]]:
    """The batches whose server part (SERVER_TOTAL) is among the slowest ``share``, and each hop's
    mean over them: what the tail is made of."""
    totals = durations[SERVER_TOTAL]
    count = max(1, int(len(totals) * share))
    chosen = sorted(range(len(totals)), key=totals.__getitem__)[-count:]
    return chosen, {name: sum(values[i] for i in chosen) / count for name, values in durations.items()}


def lists_past(
    times: dict[str, list[int]], group_sizes: list[int], warm_up_ns: int
) -> tuple[dict[str, list[int]], list[int]]:
    """One writer's lists without the batches read in the first ``warm_up_ns`` (the writers leave
    them out of their latencies too): the first entries of every list, which pair by position."""
    if not times["read"]:
        return times, group_sizes
    first = bisect.bisect_left(times["read"], times["read"][0] + warm_up_ns)
    return {hop: values[first:] for hop, values in times.items()}, group_sizes[first:]


def records_past(batches: list[dict[str, int]], warm_up_ns: int) -> list[dict[str, int]]:
    """Many writers' records without the batches read in the first ``warm_up_ns``."""
    if not batches:
        return batches
    start = min(batch["read"] for batch in batches) + warm_up_ns
    return [batch for batch in batches if batch["read"] >= start]
