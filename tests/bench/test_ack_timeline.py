"""bench/ack_timeline.py, run as a user runs it, on a latency file of known content: each half
second's batches per second and latencies, and a line it cannot read named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.bench_runs import ROOT

START = 1_700_000_000 * 10**9  # unix ns


def run(path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "bench" / "ack_timeline.py"), str(path), *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_each_step_shows_its_rate_and_latencies(tmp_path: Path) -> None:
    # First half second: 100 batches of 1 ms from two writers; second: 10 batches of 10 ms from one.
    lines = [f"{i % 2} {START + i * 4_000_000} {1_000_000}" for i in range(100)]
    lines += [f"0 {START + 500_000_000 + i * 40_000_000} {10_000_000}" for i in range(10)]
    path = tmp_path / "latencies.txt"
    path.write_text("\n".join(reversed(lines)) + "\n")  # any order: sorted by send time
    done = run(path, "--step", "0.5")
    assert done.returncode == 0, done.stderr
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines()[2:]]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["0.0", "200", "1.00", "1.00", "1.00", "2"],
        ["0.5", "20", "10.00", "10.00", "10.00", "1"],
    ]


def test_a_line_it_cannot_read_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latencies.txt"
    path.write_text(f"0 {START} 1000\n0 {START}\n")
    done = run(path)
    assert done.returncode != 0
    assert "latencies.txt:2: expected 'writer sent_ns latency_ns'" in done.stderr
