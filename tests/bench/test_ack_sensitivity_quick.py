"""bench/ack_sensitivity.py, --quick, against real agl-servers with its probes loaded: every probe
runs, takes effect in the server (the bench fails otherwise) and is reported. The figures
themselves are read from its table, never asserted."""

from __future__ import annotations

import subprocess
import sys

from support.bench_runs import ROOT, rows_by_name, run_bench, run_bench_failing


def test_each_probe_runs_in_the_server_and_is_reported() -> None:
    probes = "none,writer:40,loop:40,no-dedup,python-loop,reserve:400"
    saved = run_bench("ack_sensitivity.py", ["--quick", "--probes", probes], "ack_sensitivity_smoke_quick", timeout=600)
    assert saved["context"]["probes"] == probes.split(",")
    rows = rows_by_name(saved)
    for probe in probes.split(","):
        p50, p99 = rows[f"ack latency p50, {probe}"], rows[f"ack latency p99, {probe}"]
        assert p50["unit"] == p99["unit"] == "ms" and 0 < p50["value"] <= p99["value"], probe
        assert rows[f"batches acked per second, {probe}"]["value"] > 0, probe
        assert rows[f"a group's operations (wall), {probe}"]["value"] > 0, probe
        assert rows[f"a group's commit (wall), {probe}"]["value"] > 0, probe
        assert rows[f"operations per group, {probe}"]["value"] >= 1, probe
    # The spins are CPU of the thread they run on, once per batch: at least that much per batch.
    assert rows["of it the store writer and grpc's poller, writer:40"]["value"] >= 40
    assert rows["of it the event loop, loop:40"]["value"] >= 40
    # The reserve was made in the server and outlasted the run (the bench fails otherwise).
    assert rows["reserve pages never reached, reserve:400"]["value"] >= 256


def test_a_reserve_the_run_uses_up_fails_the_run() -> None:
    """A reserve too small for the run would report scattered commits under its name."""
    stderr = run_bench_failing(
        "ack_sensitivity.py", ["--quick", "--probes", "reserve:4"], "ack_sensitivity_small_quick", 300
    )
    assert "probe reserve:4: it left" in stderr and "give more" in stderr, stderr[-2000:]


def test_a_probe_it_cannot_run_is_refused_before_any_server_starts() -> None:
    for bad in ("writer:-5", "loop:abc", "sideways", "none,none", "reserve:0", "reserve:-1", "reserve:1.5", "reserve"):
        done = subprocess.run(
            [sys.executable, "bench/ack_sensitivity.py", "--quick", "--probes", bad],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2, (bad, done.stderr)
        assert "--probes" in done.stderr and "agl-server" not in done.stdout, (bad, done.stderr)
