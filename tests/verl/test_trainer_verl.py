"""``Trainer(algorithm=VERL(...))`` through the ``shm`` and ``cs`` strategies on CPU: rollouts by agl
runners (with the Trainer's hooks), verl's GRPO update of a tiny model, the Trainer's store and
progress. Each run is a subprocess (see ``trainer_run.py`` for what is real and what is scripted)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agl_core.store import LmdbStore
from agl_core.types import RolloutConfig
from agl_plugins.verl.config import AglSettings

HERE = Path(__file__).parent
FINITE_KEYS = ("actor/pg_loss", "actor/loss", "actor/grad_norm", "actor/entropy", "critic/advantages/max")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(HERE.parents[1] / "examples" / "verl_math"))
    try:
        from tiny_model import build
    finally:
        sys.path.pop(0)
    # Room in the embedding for the test backend's token ids (up to 51,000).
    return build(tmp_path_factory.mktemp("tiny") / "tiny-qwen2", model_vocab=51_200)  # type: ignore[no-any-return]


def train(tmp_path: Path, name: str, **spec: Any) -> tuple[dict[str, Any], str]:
    """Run ``trainer_run.py`` with ``spec``; returns its result and its output."""
    spec_path, result_path = tmp_path / f"{name}.json", tmp_path / f"{name}-result.json"
    spec_path.write_text(json.dumps(spec))
    run = subprocess.run(
        [sys.executable, "-W", "ignore", str(HERE / "trainer_run.py"), str(spec_path), str(result_path)],
        capture_output=True,
        text=True,
        timeout=400,
    )
    output = run.stdout + run.stderr
    if spec.get("kill_at_step") is not None:
        assert run.returncode == -9, output[-5000:]  # the hook killed it in the middle of the step
        return {}, output
    assert run.returncode == 0, output[-6000:]
    return json.loads(result_path.read_text()), output


async def stored_rollouts(data_dir: Path) -> dict[str, Any]:
    store = LmdbStore(data_dir)
    try:
        page = await store.query_rollouts(limit=1000)
        attempts = {r.rollout_id: list(await store.query_attempts(r.rollout_id)) for r in page}
        return {r.rollout_id: (r, attempts[r.rollout_id]) for r in page}
    finally:
        await store.close()


def assert_finite_update(step: dict[str, float]) -> None:
    for key in FINITE_KEYS:
        assert key in step and math.isfinite(step[key]), (key, step.get(key))
    assert step["actor/grad_norm"] > 0


@pytest.mark.parametrize(("strategy", "steps"), [("shm", 2), ("cs", 1)])
def test_fit_through_the_trainer(tmp_path: Path, tiny_model: Path, strategy: str, steps: int) -> None:
    """shm is configured for 3 steps and asked to stop (VERL.stop) after step 2; cs runs 1 step."""
    workdir = tmp_path / "run"
    # cs also takes rollout-level credit through the trainer (one call per rollout: same advantages).
    config = {"credit": {"level": "rollout", "rollout_mean_loss": True}} if strategy == "cs" else {}
    result, output = train(
        tmp_path,
        "fit",
        strategy=strategy,
        model=str(tiny_model),
        workdir=str(workdir),
        steps=3 if strategy == "shm" else steps,
        stop_after=2 if strategy == "shm" else None,
        config=config,
    )
    assert result["global_step"] == steps
    history = result["history"]
    # val before training (2 tasks x val_n=1), then one entry per step (2 tasks x n=2 each).
    assert history[0]["val-agl/rollouts_used"] == 2 and history[0]["val/reward"] == 1.0
    train_steps = [m for m in history if "training/global_step" in m]
    assert [m["training/global_step"] for m in train_steps] == list(range(1, steps + 1))
    for step in train_steps:
        assert step["agl/rollouts_used"] == 4 and step["agl/samples"] == 4 and step["agl/step_skipped"] == 0
        assert step["agl/reward_mean"] == 0.5  # the agent's reward: 1 for repeat 0, 0 for repeat 1
        assert step["critic/advantages/max"] == pytest.approx(0.7071, abs=1e-3)  # GRPO over groups of two
        assert_finite_update(step)
    # verl's actor update moved the weights, and they are finite.
    assert result["parameters_compared"] == result["parameters"] > 0
    assert result["parameters_changed"] > result["parameters"] // 2 and result["parameters_finite"]
    assert result["replica_calls"][-2:] == ["sleep_replicas", f"update_weights({steps})"]
    # Every rollout went through the Trainer's runners (its hook saw each) and the Trainer's store.
    rollouts = asyncio.run(stored_rollouts(workdir / "store"))
    assert sorted(rollouts) == result["hooked_rollouts"] and len(rollouts) == 2 + 4 * steps
    for rollout_id, (rollout, attempts) in rollouts.items():
        assert rollout.status.value == "succeeded" and len(attempts) == 1 and attempts[0].worker_id, rollout_id
        step = rollout.metadata["step"]
        policy = step if rollout.mode.value == "val" else step - 1  # the policy after that many updates
        assert rollout.resources_id == f"verl-{rollout.metadata['run_id']}-p{policy}"
        # The Trainer's rollout_config (3 attempts, retry on timeout/unresponsive) applies.
        assert rollout.config.max_attempts == 3
    # The Trainer's progress output: rollouts and one line per step.
    assert "agl: finished" in output and f"agl: verl step {steps}: reward 0.5" in output


def test_dev_runs_one_step_without_validation_or_checkpoints(tmp_path: Path, tiny_model: Path) -> None:
    workdir = tmp_path / "dev"
    result, _ = train(
        tmp_path, "dev", strategy="shm", model=str(tiny_model), workdir=str(workdir), steps=5, save_freq=1, dev=True
    )
    assert result["global_step"] == 1
    assert [m.get("training/global_step") for m in result["history"]] == [1]
    assert_finite_update(result["history"][0])
    assert not list((workdir / "checkpoints").glob("global_step_*"))


def test_rollout_settings_inherit_the_trainers_rollout_config() -> None:
    from agl_plugins.verl.config import RolloutSettings

    trainer = RolloutConfig(timeout_seconds=30, max_attempts=3, retry_condition=["unresponsive"])
    assert RolloutSettings().rollout_config(trainer) == trainer
    assert RolloutSettings(max_attempts=2, unresponsive_seconds=5).rollout_config(trainer) == RolloutConfig(
        timeout_seconds=30, unresponsive_seconds=5, max_attempts=2, retry_condition=["unresponsive"]
    )
    # Standalone (no Trainer): one attempt, retries only if max_attempts is raised.
    assert RolloutSettings().rollout_config() == RolloutConfig(
        max_attempts=1, retry_condition=["timeout", "unresponsive"]
    )


async def stored_resources(data_dir: Path, resources_id: str) -> Any:
    store = LmdbStore(data_dir)
    try:
        return await store.get_resources(resources_id)
    finally:
        await store.close()


def test_fit_resumes_from_the_checkpoint_and_never_counts_the_interrupted_step(
    tmp_path: Path, tiny_model: Path
) -> None:
    workdir = tmp_path / "resume"
    spec = {"strategy": "shm", "model": str(tiny_model), "workdir": str(workdir), "steps": 3, "save_freq": 1}
    # Run A: checkpoints after steps 1 and 2; killed (SIGKILL, by a runner hook in the same process)
    # when the first rollout of step 3 starts, so step 3's rollouts are left queued and running.
    train(tmp_path, "run-a", **spec, kill_at_step=3)
    killed = (workdir / "hooks" / "killed").read_text()
    assert sorted(p.name for p in (workdir / "checkpoints").glob("global_step_*")) == ["global_step_1", "global_step_2"]
    run_id = json.loads((workdir / "checkpoints" / "agl_run.json").read_text())["run_id"]
    before = asyncio.run(stored_rollouts(workdir / "store"))
    stale = {r for r, (rollout, _) in before.items() if rollout.mode.value == "train" and rollout.metadata["step"] == 3}
    assert killed in stale and len(stale) == 4
    assert {before[r][0].status.value for r in stale} <= {"queuing", "preparing", "running"}

    # Run B: the same command resumes from step 2's checkpoint and trains step 3 once.
    result, output = train(tmp_path, "run-b", **spec)
    assert "Resuming from" in output and "global_step_2" in output
    assert result["global_step"] == 3
    assert result["resumed"]["step"] == 2
    assert [m.get("training/global_step") for m in result["history"]] == [3]  # no validation rerun, no step twice
    step = result["history"][0]
    assert step["agl/rollouts"] == 4 and step["agl/rollouts_used"] == 4
    assert_finite_update(step)
    after = asyncio.run(stored_rollouts(workdir / "store"))
    assert all(r.startswith(f"ro-{run_id}-") for r in after)  # the run id survived the restart
    step3 = {
        r: rollout
        for r, (rollout, _) in after.items()
        if rollout.mode.value == "train" and rollout.metadata["step"] == 3
    }
    fresh = set(step3) - stale
    assert len(fresh) == 4 and all(step3[r].status.value == "succeeded" for r in fresh)
    # The interrupted step's rollouts: cancelled before the resumed step (or failed, if a runner took
    # one first: its LLM endpoint died with run A); none succeeded, none was trained on.
    assert set(result["resumed"]["cancelled_rollouts"]) <= stale
    assert all(step3[r].status.value == "cancelled" for r in result["resumed"]["cancelled_rollouts"])
    assert {step3[r].status.value for r in stale} <= {"cancelled", "failed"}
    # Step 3 ran with the policy after two updates, published again under the same id.
    assert {step3[r].resources_id for r in step3} == {f"verl-{run_id}-p2"}
    resources = asyncio.run(stored_resources(workdir / "store", f"verl-{run_id}-p2"))
    assert resources.version == 2
    assert sorted(p.name for p in (workdir / "checkpoints").glob("global_step_*"))[-1] == "global_step_3"


def test_ray_workers_build_in_process_as_verls_task_runner_sets_them_up(tiny_model: Path) -> None:
    from verl.trainer.ppo.utils import Role

    from agl_plugins.verl.entrypoint import build_trainer, load_config
    from agl_plugins.verl.service import RolloutService

    config = load_config(
        [
            f"actor_rollout_ref.model.path={tiny_model}",
            "trainer.n_gpus_per_node=2",
            "data.train_batch_size=2",
            "actor_rollout_ref.actor.ppo_mini_batch_size=2",
            "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1",
            "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=1",
            "algorithm.adv_estimator=grpo",
        ]
    )
    trainer = build_trainer(config, [{"q": "a"}, {"q": "b"}], [{"q": "c"}], rollouts=RolloutService(AglSettings()))
    # Workers are not started (no Ray here): the roles and pools are what init_workers would start.
    assert Role.ActorRollout in trainer.role_worker_mapping and not trainer.use_critic  # GRPO: no critic
    assert trainer.resource_pool_manager.resource_pool_spec == {"global_pool": [2]}
    assert len(trainer.train_dataloader) == 1 and trainer.agl.workers == "ray"


def test_ray_init_args_run_verls_workers_at_the_drivers_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    from agl_plugins.verl.algorithm import VERL

    monkeypatch.delenv("RAY_worker_niceness", raising=False)
    env_vars = VERL().ray_init_args()["runtime_env"]["env_vars"]
    assert env_vars["RAY_worker_niceness"] == str(os.nice(0))  # not Ray's 15 (tests/ray: what workers get)
    assert env_vars["TOKENIZERS_PARALLELISM"] == "true"  # verl's own runtime environment is kept
    chosen = {"ray_kwargs": {"ray_init": {"runtime_env": {"env_vars": {"RAY_worker_niceness": "9"}}}}}
    assert VERL(config=chosen).ray_init_args()["runtime_env"]["env_vars"]["RAY_worker_niceness"] == "9"
    monkeypatch.setenv("RAY_worker_niceness", "12")
    assert VERL().ray_init_args()["runtime_env"]["env_vars"]["RAY_worker_niceness"] == "12"


def test_agl_store_must_stay_unset_under_the_trainer(tmp_path: Path) -> None:
    from agl_core.trainer import Trainer
    from agl_plugins.verl.algorithm import VERL
    from agl_plugins.verl.config import ConfigError

    algorithm = VERL(config={"agl": {"store": "127.0.0.1:4747"}})
    trainer = Trainer(algorithm=algorithm, strategy={"type": "shm", "data_dir": str(tmp_path)}, progress=False)
    with pytest.raises(ConfigError, match="the store is the Trainer's"):
        trainer.fit(lambda task: 1.0, [{"q": "a"}])
