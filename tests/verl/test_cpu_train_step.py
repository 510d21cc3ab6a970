"""A whole AglPPOTrainer step on CPU, verl's FSDP engine taking the update (see cpu_train_step.py for
what runs for real and what does not: Ray worker groups and vLLM)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def test_one_training_step_on_cpu(tmp_path: Path) -> None:
    sys.path.insert(0, str(HERE.parents[1] / "examples" / "verl_math"))
    try:
        from tiny_model import build
    finally:
        sys.path.pop(0)
    model = build(tmp_path / "tiny-qwen2")
    result_path = tmp_path / "result.json"
    run = subprocess.run(
        [sys.executable, "-W", "ignore", str(HERE / "cpu_train_step.py"), str(model), str(result_path)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    result = json.loads(result_path.read_text())
    metrics = result["metrics"]
    # gen: four rollouts (two tasks x n=2) through agl-server, the proxy and the runners.
    assert metrics["agl/rollouts_used"] == 4 and metrics["agl/samples"] == 4 and metrics["agl/step_skipped"] == 0
    assert [
        ids[: len(expected)]
        for ids, expected in zip(result["gen_response_ids"], result["expected_response_ids"], strict=True)
    ] == result["expected_response_ids"]
    assert result["gen_scores"] == [1.0, 0.0, 1.0, 0.0]
    # adv: verl's GRPO over each task's group of two.
    assert metrics["critic/advantages/max"] == pytest.approx(0.7071, abs=1e-3)
    assert metrics["critic/advantages/min"] == pytest.approx(-0.7071, abs=1e-3)
    # update: verl's actor update ran and moved the weights; the replicas were put to sleep and synced.
    for key in ("actor/pg_loss", "actor/loss", "actor/grad_norm", "actor/entropy"):
        assert key in metrics and math.isfinite(metrics[key]), (key, metrics.get(key))  # NaN/inf fail here
    assert metrics["actor/grad_norm"] > 0
    assert result["parameters_changed"] > result["parameters"] // 2 and result["parameters_finite"]
    assert result["replica_calls"] == ["sleep_replicas", "update_weights(1)"]
    for phase in ("gen", "reward", "old_log_prob", "adv", "update_actor", "step"):
        assert f"timing_s/{phase}" in metrics, phase
