"""GRPO on a CPU, the policy serving its own rollouts: a tiny random model learns to answer in words.

    python examples/verl_cpu/train.py --out /tmp/agl-letters            # about 2-4 minutes on 2 cores

What runs: agl's Trainer with the ``cs`` strategy (agl-server and runner processes), the
``letters`` agent (``letters_agent.py``) calling the LLM through agl's LLM proxy, the CPU rollout
engine (``rollout.name=agl_cpu``) answering with the policy being trained, verl's GRPO advantages
and FSDP2 actor update (``agl.workers=local``: the actor in this process), and the weight sync
from the actor to the engine after every update. The reward is the share of letters in the
model's replies: nothing scripted decides it.

Writes ``curve.json`` (validation and training reward per step, loss, grad norm, timings) and
``curve.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent / "verl_math")]  # letters_agent, tiny_model (runners inherit sys.path)

# Tuned on a loaded 2-core machine: 32 rollouts a step (4 tasks x 8), one PPO update of 32 samples.
SETTINGS = {
    "steps": 12,
    "tasks_per_step": 4,
    "n": 8,
    "lr": 1e-2,
    "val_every": 4,
    "val_tasks": 8,
    "val_n": 2,
}


def overrides(model: Path, workdir: Path, steps: int, settings: dict[str, Any], val_before_train: bool) -> list[str]:
    return [
        f"actor_rollout_ref.model.path={model}",
        "algorithm.adv_estimator=grpo",
        f"actor_rollout_ref.rollout.n={settings['n']}",
        "actor_rollout_ref.rollout.temperature=1.0",
        "actor_rollout_ref.rollout.val_kwargs.temperature=1.0",  # the policy's expected reward, not greedy luck
        "actor_rollout_ref.rollout.val_kwargs.do_sample=true",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={settings['tasks_per_step']}",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=32",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=32",
        f"actor_rollout_ref.actor.optim.lr={settings['lr']}",
        "actor_rollout_ref.actor.use_kl_loss=false",
        "actor_rollout_ref.actor.entropy_coeff=0",
        f"data.train_batch_size={settings['tasks_per_step']}",
        "data.max_prompt_length=64",
        "data.max_response_length=16",
        "trainer.logger=[console]",
        f"trainer.total_training_steps={steps}",
        "trainer.total_epochs=1000",
        "trainer.save_freq=-1",
        f"trainer.test_freq={settings['val_every']}",
        f"trainer.val_before_train={str(val_before_train).lower()}",
        f"trainer.default_local_dir={workdir / 'checkpoints'}",
    ]


def train(
    model: Path,
    workdir: Path,
    *,
    steps: int | None = None,
    strategy: str = "cs",
    val_before_train: bool = True,
    workers: str = "local",
) -> dict[str, Any]:
    """Train and return the curve (see the module docstring).

    :param workers: ``local`` (the actor and the engine in this process) or ``ray`` (verl's Ray
        worker groups on the CPU platform, the engine as verl's rollout replica).
    """
    if workers == "ray":
        # This process builds verl's replicas too: it runs on the CPU platform and knows the engine
        # (the verl.plugins entry point registers it once agl is pip-installed).
        import os

        os.environ.setdefault("VERL_PLATFORM", "cpu")
        import agl_plugins.verl.cpu_engine  # noqa: F401
    from letters_agent import letters, tasks

    from agl_core.trainer import Trainer
    from agl_plugins.verl.algorithm import VERL
    from agl_plugins.verl.cpu_engine import preset

    settings = dict(SETTINGS)
    steps = steps or settings["steps"]
    config = preset()
    config["agl"] = {"workers": workers, "rollout": {"step_timeout": 300}, "val_n": settings["val_n"]}
    algorithm = VERL(config=config, overrides=overrides(model, workdir, steps, settings, val_before_train))
    strategy_spec: Any = {"type": strategy, "data_dir": str(workdir / "store")}
    cluster = None
    if strategy == "ray":
        # One Ray cluster for agl's runners (Ray actors) and verl's workers, connected here the way
        # verl's config asks (virtual GPU slots, VERL_PLATFORM=cpu for every worker); both use this
        # connection, which stays open after fit() to read the engine actor's calls below.
        import os

        from agl_plugins.strategies.on_ray.cluster import connect

        # The runner actors import the agent by path: this directory goes on the workers' path
        # (a local cluster's workers inherit this environment; on a real cluster, install the agent).
        here = str(Path(__file__).resolve().parent)
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
        cluster = connect(None, algorithm.ray_init_args())
        # No CPUs for the runners: verl's workers hold them.
        strategy_spec = {"type": "ray", "data_dir": workdir / "store", "runner_resources": {"num_cpus": 0}}
    trainer = Trainer(algorithm=algorithm, strategy=strategy_spec, n_runners=2, runner_capacity=16, progress="lines")
    train_tasks = tasks(steps * settings["tasks_per_step"])
    # Validation asks about numbers held out from training but of the same kind (the ones right
    # after the training ones). Far larger numbers (10,000 on) tokenize unlike anything trained on:
    # a policy at reward 1.0 on its training prompts once scored 0.72 on them, and the bar below
    # the curve is about learning, not about that leap.
    val_tasks = tasks(settings["val_tasks"], offset=len(train_tasks))
    try:
        result = trainer.fit(letters, train_tasks, val_dataset=val_tasks)
        return _curve(algorithm, result, settings, steps, strategy, workers)
    finally:
        if cluster is not None:
            cluster.close()


def _curve(
    algorithm: Any, result: Any, settings: dict[str, Any], steps: int, strategy: str, workers: str
) -> dict[str, Any]:
    history = [
        {k: float(v) for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for m in result.history
    ]
    module = getattr(algorithm.trainer.actor_rollout_wg, "module", None)  # local workers: the actor's model
    weights_finite = None
    if module is not None:
        weights_finite = all(
            bool((p.full_tensor() if hasattr(p, "full_tensor") else p).isfinite().all()) for p in module.parameters()
        )
    replica_calls = list(getattr(algorithm.trainer.checkpoint_manager, "calls", []))
    if workers == "ray":  # verl drove the engine's server actor: it keeps the calls it got
        import ray

        from agl_plugins.verl.cpu_engine.rollout import server_actor_name

        replica_calls = ray.get(ray.get_actor(server_actor_name(0)).control_calls.remote())
    ray_nodes = None
    if strategy == "ray":
        import ray

        ray_nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    return {
        "settings": {**settings, "steps": steps, "strategy": strategy, "workers": workers},
        "steps": [
            {
                "step": int(m.get("training/global_step", 0)),
                "val_reward": m.get("val/reward"),
                "train_reward": m.get("agl/reward_mean"),
                "pg_loss": m.get("actor/pg_loss"),
                "grad_norm": m.get("actor/grad_norm"),
                "rollouts": m.get("agl/rollouts"),
                "seconds": m.get("timing_s/step"),
            }
            for m in history
        ],
        "history": history,
        "weights_finite": weights_finite,
        "replica_calls": replica_calls,
        "ray_nodes": ray_nodes,
    }


def plot(curve: dict[str, Any], path: Path) -> None:
    """The rewards per step as a PNG (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(key: str) -> tuple[list[int], list[float]]:
        points = [(s["step"], s[key]) for s in curve["steps"] if s[key] is not None and math.isfinite(s[key])]
        return [p[0] for p in points], [p[1] for p in points]

    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(*series("train_reward"), label="train reward (rollouts of the step)", alpha=0.6)
    axis.plot(*series("val_reward"), marker="o", label="validation reward")
    axis.set_xlabel("GRPO step")
    axis.set_ylabel("share of letters in the reply")
    axis.set_ylim(0, 1.05)
    axis.set_title("tiny Qwen2 on CPU, rollouts by the policy itself (agl_cpu engine)")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory for curve.json, curve.png and the run")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--strategy", default="cs", choices=["cs", "shm", "ray"])
    parser.add_argument("--workers", default="local", choices=["local", "ray"])
    args = parser.parse_args()
    from tiny_model import build

    args.out.mkdir(parents=True, exist_ok=True)
    model = build(args.out / "tiny-qwen2")
    curve = train(model, args.out, steps=args.steps, strategy=args.strategy, workers=args.workers)
    (args.out / "curve.json").write_text(json.dumps(curve, indent=1, allow_nan=True))
    plot(curve, args.out / "curve.png")
    for point in curve["steps"]:
        print(json.dumps({k: point[k] for k in ("step", "val_reward", "train_reward", "grad_norm", "seconds")}))


if __name__ == "__main__":
    main()
