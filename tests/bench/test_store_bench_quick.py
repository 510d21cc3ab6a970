"""bench/store_bench.py's sections that run alone (--ack-only, --rollouts-only), --quick, against a
real agl-server: each runs, prints its table and saves every row. A smoke test of the benchmark;
the figures themselves are read from its table, never asserted."""

from __future__ import annotations

from support.bench_runs import rows_by_name, run_bench


def run_section(flags: list[str], out: str) -> dict[str, tuple[float, str]]:
    """Run one section; its saved rows by name: (value, unit). ``out`` ends in _quick (ignored by git)."""
    rows = rows_by_name(run_bench("store_bench.py", ["--quick", *flags], out, timeout=180))
    return {name: (row["value"], row["unit"]) for name, row in rows.items()}


def test_ack_only_reports_latency_and_cpu_per_batch() -> None:
    rows = run_section(["--ack-only", "--go-client"], "store_bench_ack_smoke_quick")
    for writers in (1, 8):
        p50 = rows[f"ack latency p50, {writers} writer(s), 10 spans/batch"]
        p99 = rows[f"ack latency p99, {writers} writer(s), 10 spans/batch"]
        assert p50[1] == p99[1] == "ms" and 0 < p50[0] <= p99[0]
        for side in ("server", "client"):
            value, unit = rows[f"{side} CPU per batch, {writers} writer(s)"]
            assert unit == "us" and value > 0, (side, writers)
        # The store's writer, from the server's /metrics: it ran groups, each with its operations
        # and a commit, and cannot have been busy longer than the run.
        busy, unit = rows[f"store writer busy, {writers} writer(s)"]
        assert unit == "%" and 0 < busy <= 100, (busy, writers)
        per_group, _ = rows[f"operations per group commit, {writers} writer(s)"]
        assert per_group >= 1, writers
        run, _ = rows[f"per group: running its operations, {writers} writer(s)"]
        commit, _ = rows[f"per group: commit (write + sync), {writers} writer(s)"]
        assert run > 0 and commit > 0, (run, commit, writers)
        # The same writers as goroutines of agl-loadgen: every batch acked with all its spans stored.
        label = f"{writers} writer(s), 10 spans/batch, Go client"
        p50, p99 = rows[f"ack latency p50, {label}"], rows[f"ack latency p99, {label}"]
        assert p50[1] == p99[1] == "ms" and 0 < p50[0] <= p99[0], (p50, p99)
        assert rows[f"server CPU per batch, {label}"][0] > 0
        # The server's CPU by thread: the event loop and the store's writer both worked on every batch.
        assert rows[f"of it event loop thread, {label}"][0] > 0
        assert rows[f"of it other threads (store writer, poller), {label}"][0] > 0
        assert rows[f"batches not wholly stored, {label}"] == (0, "batches")
        # The same writers against the bare grpc.aio handler (no store), which answers each batch
        # as agl-server does: its id, every span accepted (agl-loadgen counts any other ack as bad).
        floor = f"{label}, bare grpc.aio (no store)"
        p50, p99 = rows[f"floor: ack latency p50, {floor}"], rows[f"floor: ack latency p99, {floor}"]
        assert p50[1] == p99[1] == "ms" and 0 < p50[0] <= p99[0], (p50, p99)
        assert rows[f"floor: server CPU per batch, {floor}"][0] > 0
        assert rows[f"floor: acks not for the whole batch, {floor}"] == (0, "batches")


def test_rollouts_only_reports_every_rate() -> None:
    rows = run_section(["--rollouts-only"], "store_bench_rollouts_smoke_quick")
    names = [
        "enqueue, 1 per call, 1 in flight",
        "enqueue, 1 per call, 32 in flight",
        "enqueue, 100 per call",
        "dequeue, 1 client",
        "dequeue, 8 clients",
    ]
    for name in names:
        value, unit = rows[name]
        assert unit == "rollouts/s" and value > 0, name
