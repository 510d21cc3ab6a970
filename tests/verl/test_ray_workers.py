"""``agl.workers: ray``: verl's Ray worker groups on the CPU platform drive the CPU engine as their
rollout replica (the way they drive vLLM), and a run finishes its steps.

The run is ``examples/verl_cpu/train.py --workers ray`` in a subprocess (Ray and verl set
process-wide state). What it pins: the steps happened with every rollout, and the engine's server
actor got verl's weight sync after every update (``update_weights(step)``) through verl's own
checkpoint manager and the worker's server adapter, not through agl's in-process path.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "verl_cpu" / "train.py"
STEPS = 2


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ray_workers_train_steps_with_the_engine_as_verls_replica(tmp_path: Path) -> None:
    command = [sys.executable, "-W", "ignore", str(EXAMPLE), "--out", str(tmp_path)]
    run = subprocess.run(
        [*command, "--workers", "ray", "--steps", str(STEPS)],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    curve = json.loads((tmp_path / "curve.json").read_text())
    assert curve["settings"]["workers"] == "ray"
    trained = [s for s in curve["steps"] if s["train_reward"] is not None]
    assert [s["step"] for s in trained] == list(range(1, STEPS + 1))
    per_step = curve["settings"]["tasks_per_step"] * curve["settings"]["n"]
    assert all(s["rollouts"] == per_step for s in trained), trained
    for s in trained:
        assert math.isfinite(s["pg_loss"]) and math.isfinite(s["grad_norm"]) and s["grad_norm"] > 0, s

    # The engine's server actor (a Ray actor) got verl's weight sync after every update.
    calls = curve["replica_calls"]
    updates = [c for c in calls if c.startswith("update_weights")]
    assert updates == [f"update_weights({step})" for step in range(STEPS + 1)], calls
