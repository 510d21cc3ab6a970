"""bench/fleet_bench.py --quick against a real agl-server: the load generator builds, every scenario
runs, the exactly-once check of the large batch passes and the result file has its fields. A smoke
test of the benchmark; the figures themselves are read from its table, never asserted."""

from __future__ import annotations

import shutil

import pytest
from support.bench_runs import run_bench

OUT = "fleet_bench_smoke_quick"  # *_quick.json is ignored by git


@pytest.mark.skipif(shutil.which("go") is None, reason="the fleet bench's load generator needs the Go toolchain")
def test_fleet_bench_quick_runs_every_scenario_exactly_once() -> None:
    # 240 s: a cold Go build cache compiles gRPC first; the run itself takes about 10 s.
    saved = run_bench("fleet_bench.py", ["--quick"], OUT, timeout=240)
    results = saved["context"]["results"]
    assert set(results) == {"welcome", "large-batch", "lifecycle-8"}
    sizes = saved["context"]["sizes"]

    welcome = results["welcome"]
    assert welcome["welcomed"] == sizes["workers"] == 50
    assert welcome["stream_errors"] == 0
    assert welcome["dispatch_count"] == welcome["dispatch_enqueued"] > 0
    assert welcome["dispatch_missing"] == 0

    batch = results["large-batch"]
    assert batch["exactly_once"] is True
    assert batch["duplicates"] == batch["missing"] == batch["failed_acks"] == batch["verify_bad"] == 0
    assert batch["verified_succeeded_one_attempt"] == batch["completed"] == sizes["tasks"] == 2_000
    assert batch["rollouts_per_s"] > 0

    lifecycle = results["lifecycle-8"]
    assert lifecycle["completed_in_window"] > 0 and lifecycle["duplicates"] == 0
    # The default, as the runners do: start_on_assignment, so every attempt arrives RUNNING and
    # gets its final report alone (no RUNNING report, no RUNNING ack).
    assert sizes["start_on_assignment"] is True and lifecycle["start_on_assignment"] is True
    assert lifecycle["assigned_running"] == lifecycle["assigned"] > 0
    assert lifecycle["ack_running_count"] == 0 and lifecycle["ack_final_count"] > 0
    assert batch["assigned_running"] == batch["assigned"] == 2_000

    for result in results.values():
        server = result["server"]
        assert server["cpu_s"] > 0 and server["cpu_ms_per_rollout"] > 0
        assert server["rss_peak_mb"] >= server["rss_before_mb"] > 0
    names = [row["name"] for row in saved["rows"]]
    for expected in ("all welcomed after", "dispatch latency", "exactly-once check", "lifecycle, 8 workers"):
        assert any(expected in name for name in names), (expected, names)
    assert "load_average_start" in saved["context"] and "uptime_end" in saved["context"]


@pytest.mark.skipif(shutil.which("go") is None, reason="the fleet bench's load generator needs the Go toolchain")
def test_fleet_bench_assign_preparing_reports_running() -> None:
    """--assign-preparing: the workers leave start_on_assignment out, so attempts arrive PREPARING
    and are reported RUNNING (back to back with the final report); both acks are timed."""
    saved = run_bench(
        "fleet_bench.py",
        ["--quick", "--scenarios", "lifecycle", "--assign-preparing"],
        "fleet_bench_smoke_preparing_quick",
        timeout=240,
    )
    lifecycle = saved["context"]["results"]["lifecycle-8"]
    assert lifecycle["start_on_assignment"] is False and lifecycle["assigned_running"] == 0
    assert lifecycle["ack_running_count"] > 0 and lifecycle["ack_final_count"] > 0
    assert lifecycle["running_report"] is True and lifecycle["running_wait"] is False
    assert lifecycle["failed_acks"] == 0 and lifecycle["duplicates"] == 0


@pytest.mark.skipif(shutil.which("go") is None, reason="the fleet bench's load generator needs the Go toolchain")
def test_fleet_bench_held_attempts_are_heartbeaten_together() -> None:
    """The held scenario: agents that work (agl-loadgen -hold), so workers hold several attempts at
    each heartbeat, and agl-server writes those attempts' heartbeats several to a store operation."""
    saved = run_bench(
        "fleet_bench.py",
        ["--quick", "--scenarios", "held", "--held-workers", "8", "--capacity", "4", "--hold", "0.5",
         "--heartbeat", "0.2"],
        "fleet_bench_smoke_held_quick",
        timeout=240,
    )  # fmt: skip
    held = saved["context"]["results"]["held"]
    assert held["completed_in_window"] > 0 and held["duplicates"] == 0 and held["failed_acks"] == 0
    assert held["ack_final_count"] > 0
    writes = held["store_writes"]
    # 8 workers beating every 0.2 s over the whole run, each with the attempts it holds.
    assert writes["agl_attempt_heartbeats_total"] > 8
    assert 0 < writes["agl_attempt_heartbeat_writes_total"] < writes["agl_attempt_heartbeats_total"]
    assert writes["groups"] > 0 and writes["operations"] >= writes["groups"]
