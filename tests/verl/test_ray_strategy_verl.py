"""verl's Ray workers and agl's runners on one Ray cluster: ``examples/verl_cpu/train.py
--workers ray --strategy ray`` (in a subprocess: Ray and verl set process-wide state).

The script connects Ray once, with what verl's config asks for (``VERL.ray_init_args()``); the
ray strategy and verl's ``init_ray`` both find that connection and start no cluster of their own.
What it pins: the GRPO steps ran with every rollout; the rollouts were run by the strategy's
runner actors (worker ids ``ray-runner-I-NODE-PID``) on a node of that cluster; verl's engine
actor, reached through the same connection after the run, got verl's weight syncs.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agl_core.store import LmdbStore

EXAMPLE = Path(__file__).parents[2] / "examples" / "verl_cpu" / "train.py"
STEPS = 2


async def worker_ids(data_dir: Path) -> list[str]:
    store = LmdbStore(data_dir)
    try:
        return [w.worker_id for w in await store.query_workers()]
    finally:
        await store.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_verl_workers_and_agl_runners_share_one_ray_cluster(tmp_path: Path) -> None:
    command = [sys.executable, "-W", "ignore", str(EXAMPLE), "--out", str(tmp_path)]
    run = subprocess.run(
        [*command, "--workers", "ray", "--strategy", "ray", "--steps", str(STEPS)],
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    curve = json.loads((tmp_path / "curve.json").read_text())
    assert curve["settings"]["strategy"] == "ray" and curve["settings"]["workers"] == "ray"
    trained = [s for s in curve["steps"] if s["train_reward"] is not None]
    assert [s["step"] for s in trained] == list(range(1, STEPS + 1))
    per_step = curve["settings"]["tasks_per_step"] * curve["settings"]["n"]
    assert all(s["rollouts"] == per_step for s in trained), trained

    # The rollouts' runners were Ray actors on a node of the one cluster.
    nodes = {node[:12] for node in curve["ray_nodes"]}
    workers = asyncio.run(worker_ids(tmp_path / "store"))
    assert len(workers) == 2 and all(w.startswith("ray-runner-") for w in workers), workers
    assert {w.split("-")[3] for w in workers} <= nodes
    # verl's engine actor is in that cluster too: the script reached it through the same connection.
    updates = [c for c in curve["replica_calls"] if c.startswith("update_weights")]
    assert updates == [f"update_weights({step})" for step in range(STEPS + 1)], curve["replica_calls"]
