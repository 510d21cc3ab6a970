"""Train through agl's Trainer with the verl algorithm on CPU, in a process of its own (verl sets
process-wide state: its platform, a torch.distributed group). Run by ``test_trainer_verl.py``.

What runs for real: the Trainer and its strategy (``shm``: embedded store and runner threads;
``cs``: agl-server and runner processes), the agent in agl runners calling the LLM proxy, the
rollout phase, verl's advantage computation and verl's FSDP2 actor update of a tiny Qwen2 model
on CPU (``agl.workers: local``), checkpoints (``trainer.save_freq``). What is scripted: the LLM
answering the rollouts (``tests/support/openai_server.py`` via ``agl.backends``), so weights are
not synced to what serves the rollouts here.

Usage: ``python trainer_run.py SPEC_JSON RESULT_JSON`` where the spec holds ``strategy``,
``model``, ``workdir``, ``steps`` and optional ``save_freq``, ``kill_at_step``, ``stop_after``,
``dev``, ``overrides``, ``config``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # verl_agents (runner processes inherit sys.path), support.*

TASKS = [{"q": "what is 3 plus 4"}, {"q": "what is 10 minus 7"}, {"q": "name a prime"}, {"q": "what is 2 times 8"}]


def parameters(module: Any) -> dict[str, Any]:
    import torch

    out = {}
    for name, p in module.named_parameters():
        value = p.full_tensor() if hasattr(p, "full_tensor") else p
        out[name] = value.detach().to(torch.float32).clone()
    return out


def main(spec_path: str, result_path: str) -> None:
    import torch
    from support.openai_server import OpenAIServer
    from transformers import AutoModelForCausalLM
    from verl_agents import RecordingHook, echo_agent

    from agl_core.trainer import Trainer
    from agl_plugins.verl.algorithm import VERL

    spec = json.loads(Path(spec_path).read_text())
    workdir = Path(spec["workdir"])
    hooks_dir = workdir / "hooks"
    hooks_dir.mkdir(parents=True, exist_ok=True)
    backend = OpenAIServer().start()
    overrides = [
        f"actor_rollout_ref.model.path={spec['model']}",
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.model.use_remove_padding=false",
        "actor_rollout_ref.actor.strategy=fsdp2",
        "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.n=2",
        "actor_rollout_ref.actor.optim.lr=1e-3",
        "algorithm.adv_estimator=grpo",
        "data.train_batch_size=2",
        "data.max_prompt_length=32",
        "data.max_response_length=16",
        "trainer.n_gpus_per_node=1",
        "trainer.logger=[console]",
        f"trainer.total_training_steps={spec['steps']}",
        "trainer.total_epochs=100",
        f"trainer.save_freq={spec.get('save_freq', -1)}",
        f"trainer.default_local_dir={workdir / 'checkpoints'}",
        "trainer.val_before_train=true",
        "trainer.test_freq=-1",
        *spec.get("overrides", []),
    ]
    config = {"agl": {"workers": "local", "backends": [backend.base_url], "rollout": {"step_timeout": 120}}}
    for key, value in spec.get("config", {}).items():
        config["agl"][key] = value
    stop_after = spec.get("stop_after")

    class StoppingVERL(VERL):
        """VERL whose run is asked to stop (``VERL.stop``) once step ``stop_after`` is done."""

        def _on_step(self, step: int, metrics: dict[str, Any]) -> None:
            super()._on_step(step, metrics)
            if stop_after is not None and "training/global_step" in metrics and step >= stop_after:
                self.stop()

    algorithm = StoppingVERL(config=config, overrides=overrides)
    strategy = {"type": spec["strategy"], "data_dir": str(workdir / "store")}
    if spec["strategy"] == "cs":
        strategy["keep_data"] = True
    trainer = Trainer(
        algorithm=algorithm,
        strategy=strategy,
        n_runners=2,
        hooks=[RecordingHook(str(hooks_dir), spec.get("kill_at_step"))],
        progress="lines",
    )
    run = trainer.dev if spec.get("dev") else trainer.fit
    try:
        result = run(echo_agent, TASKS, val_dataset=TASKS[:2])
    finally:
        backend.stop()
    after = parameters(algorithm.trainer.actor_rollout_wg.module)
    initial = AutoModelForCausalLM.from_pretrained(spec["model"], torch_dtype=torch.float32)
    before = {name: p.detach() for name, p in initial.named_parameters()}
    common = [name for name in after if name in before]
    out = {
        "global_step": result.global_step,
        "resumed": result.resumed,
        "history": [
            {k: float(v) for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            for m in result.history
        ],
        "parameters": len(after),
        "parameters_compared": len(common),
        "parameters_changed": sum(not torch.equal(before[n], after[n]) for n in common),
        "parameters_finite": all(bool(torch.isfinite(p).all()) for p in after.values()),
        "replica_calls": algorithm.trainer.checkpoint_manager.calls,
        "hooked_rollouts": sorted(p.name for p in hooks_dir.iterdir() if p.name.startswith("ro-")),
    }
    Path(result_path).write_text(json.dumps(out, allow_nan=True))
    print(json.dumps({k: out[k] for k in ("global_step", "parameters_changed")}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
