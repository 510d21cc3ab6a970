"""bench/store_bench.py's sections that run alone (--ack-only, --rollouts-only), --quick, against a
real agl-server: each runs, prints its table and saves every row. A smoke test of the benchmark;
the figures themselves are read from its table, never asserted."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest
from support.bench_runs import ROOT, rows_by_name, run_bench


def run_section(flags: list[str], out: str) -> dict[str, tuple[float, str]]:
    """Run one section; its saved rows by name: (value, unit). ``out`` ends in _quick (ignored by git)."""
    return values(run_bench("store_bench.py", ["--quick", *flags], out, timeout=180))


def values(saved: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """A saved result's rows by name: (value, unit)."""
    return {name: (row["value"], row["unit"]) for name, row in rows_by_name(saved).items()}


def test_ack_only_reports_latency_and_cpu_per_batch() -> None:
    # The grpc.aio and grpc-go floors here; Rust's in test_ack_floors_of_rust_tonic_with_split_cpus.
    flags = ["--ack-only", "--go-client", "--floors", "grpc.aio,grpc-go", "--go-latencies"]
    rows = run_section(flags, "store_bench_ack_smoke_quick")
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
        # The Go writers' own CPU, which shares the machine with the server's.
        assert rows[f"client CPU per batch (agl-loadgen), {label}"][0] > 0
        # And their garbage: every batch sent and acked allocates something (the ack at least).
        allocated, unit = rows[f"client allocated per batch (agl-loadgen), {label}"]
        assert unit == "bytes" and allocated > 0
        collections, unit = rows[f"client garbage collections (agl-loadgen), {label}"]
        assert unit == "in the window" and collections >= 0 and collections == int(collections)
        for stack in ("grpc.aio", "grpc-go"):
            check_floor_rows(rows, f"{label}, bare {stack} (no store)")
    # --go-latencies: every batch of the eight Go writers' window, from each writer, one line each
    # (the bench itself checks their number against the batches acked), and its half seconds.
    lines = (ROOT / "bench" / "results" / "store_bench_ack_smoke_quick.latencies.txt").read_text().splitlines()
    samples = [tuple(map(int, line.split())) for line in lines]
    assert samples and all(len(sample) == 3 for sample in samples)
    assert {sample[0] for sample in samples} == set(range(8))
    assert all(sample[2] > 0 for sample in samples)
    assert [sample[1] for sample in samples] == sorted(sample[1] for sample in samples)
    label = "8 writer(s), 10 spans/batch, Go client"
    slowest = rows[f"batches per second, slowest half second, {label}"]
    fastest = rows[f"batches per second, fastest half second, {label}"]
    assert slowest[1] == fastest[1] == "batches/s" and 0 < slowest[0] <= fastest[0]


def check_floor_rows(rows: dict[str, tuple[float, str]], floor: str) -> None:
    """The same writers against a bare handler (no store), which answers each batch as agl-server
    does: its id, every span accepted (agl-loadgen counts any other ack as bad)."""
    p50, p99 = rows[f"floor: ack latency p50, {floor}"], rows[f"floor: ack latency p99, {floor}"]
    assert p50[1] == p99[1] == "ms" and 0 < p50[0] <= p99[0], (floor, p50, p99)
    for side in ("server", "client"):
        value, unit = rows[f"floor: {side} CPU per batch, {floor}"]
        assert unit == "us" and value > 0, (floor, side)
    assert rows[f"floor: acks not for the whole batch, {floor}"] == (0, "batches"), floor


def check_storing_floor(saved: dict[str, Any], floor: str) -> None:
    """A floor that stores spans: its rows for one and eight writers, and, counted in its store once
    it stopped, at least ten spans for every batch it acked."""
    rows = values(saved)
    for writers in (1, 8):
        check_floor_rows(rows, f"{writers} writer(s), 10 spans/batch, Go client, {floor}")
    row = rows_by_name(saved)[f"floor: spans stored, {floor}"]
    acked = int(row["target"].removeprefix(">= "))
    assert row["met"] and row["value"] >= acked > 0, row


def test_ack_floors_of_rust_tonic_with_split_cpus() -> None:
    """bench/floors/rust-ackfloor, built with cargo from the workspace's committed Cargo.lock (the first build
    fetches and compiles its crates: about two minutes here), answers the Go writers as agl-server
    does, bare, storing every span durably in LMDB (all of them there once it stops), and as the
    edge of agl's own store, in another process (bench/rust_edge_floor.py) and inside the store's
    process (bench/native_edge_floor.py, a PyO3 extension built the same way): every acked span
    there once it stops, counted by agl's store, also with the writer's span operation bare
    (bench/bare_span_op.py). With --split-cpus, agl-server and the floors run
    on CPU 0 and the writers on the others."""
    if shutil.which("cargo") is None:
        pytest.skip("cargo is not on PATH: the Rust floor cannot be built (install Rust with rustup)")
    if len(os.sched_getaffinity(0)) < 2 or 0 not in os.sched_getaffinity(0):
        pytest.skip("--split-cpus needs CPU 0 and another CPU")
    floors = "rust-tonic,rust-tonic-lmdb,agl-rust-edge,agl-native-edge,agl-native-edge-bare"
    flags = ["--quick", "--ack-only", "--go-client", "--floors", floors, "--split-cpus"]
    saved = run_bench("store_bench.py", flags, "store_bench_ack_rust_smoke_quick", timeout=900)
    others = sorted(os.sched_getaffinity(0) - {0})
    assert saved["context"]["cpus"] == f"servers on [0], the bench and its load generators on {others}"
    rows = values(saved)
    for writers in (1, 8):
        label = f"{writers} writer(s), 10 spans/batch, Go client"
        assert rows[f"batches not wholly stored, {label}"] == (0, "batches")
        check_floor_rows(rows, f"{label}, bare Rust tonic (no store)")
    check_storing_floor(saved, "Rust tonic, spans durably into LMDB")
    check_storing_floor(saved, "Rust tonic edge + agl store in another process")
    check_storing_floor(saved, "tonic edge inside agl's store process")
    # Counted under the bare operation's keys only: with agl's own operation it would have none.
    check_storing_floor(saved, "tonic edge inside agl's store process, writer's span operation bare")


def test_ack_floor_of_agl_split_stores_every_acked_span() -> None:
    """bench/split_ingest_floor.py: a grpc.aio edge process hands each batch to agl's own store in
    a second process. Its acks say every span was accepted (which agl's store says only of spans
    placed in running attempts: those of agl-server's data it copied), and after it stops the
    store holds at least ten new spans per acked batch, counted by agl's store itself.

    The Go writers send their batches serialized once (--go-encode once), with new span ids
    written into the bytes for every send: that every span of every batch is stored anew, by
    agl-server as by the floor, shows the ids are new each time and the bytes still a valid batch."""
    flags = ["--quick", "--ack-only", "--go-client", "--floors", "agl-split", "--go-encode", "once"]
    saved = run_bench("store_bench.py", flags, "store_bench_ack_split_quick", timeout=180)
    assert saved["context"]["go_writers_encode"] == "once"
    rows = values(saved)
    for writers in (1, 8):
        assert rows[f"batches not wholly stored, {writers} writer(s), 10 spans/batch, Go client"] == (0, "batches")
    check_storing_floor(saved, "grpc.aio edge + agl store in another process")


def test_ack_floor_of_agl_with_its_span_path_compiled_stores_every_acked_span() -> None:
    """bench/compiled_floor.py: agl-server from a copy of agl_core whose writer's span path mypyc
    compiled (the floor fails unless the server has the compiled modules loaded). It answers the
    Go writers as agl-server does, and after it stops its store holds ten new spans per acked batch."""
    flags = ["--quick", "--ack-only", "--go-client", "--floors", "agl-mypyc"]
    saved = run_bench("store_bench.py", flags, "store_bench_ack_mypyc_quick", timeout=900)
    assert not any(key.startswith("floor skipped") for key in saved["context"]), saved["context"]
    check_storing_floor(saved, "agl-server, writer's span path compiled (mypyc)")


def test_ack_floor_of_agl_with_a_bare_span_operation_stores_every_acked_span() -> None:
    """bench/bare_op_floor.py: agl-server with its writer's span operation replaced in the server's
    process by bench/bare_span_op.py's. It answers the Go writers as agl-server does, and after it
    stops its store holds ten spans per acked batch under the bare operation's keys, which agl's own
    operation never writes: the replacement took effect in the server that answered."""
    flags = ["--quick", "--ack-only", "--go-client", "--floors", "agl-bare-op"]
    saved = run_bench("store_bench.py", flags, "store_bench_ack_bare_op_quick", timeout=300)
    check_storing_floor(saved, "agl-server, writer's span operation bare")


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
