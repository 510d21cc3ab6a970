"""One verl training step on CPU, phase by phase: rollout, reward/adapt, update, weight sync.

    python bench/verl_step_bench.py [--steps 4] [--n 8] [--tasks 4]

Runs the CPU training of ``examples/verl_cpu/train.py`` (Trainer with the ``cs`` strategy, the
``letters`` agent in agl runner processes, the CPU rollout engine serving the policy, verl's GRPO
and FSDP2 actor update in the trainer's process) for a few steps, without validation, and reports
each phase's median time over the steps after the first (the first one warms up):

- rollout: verl's ``gen`` phase: rollouts enqueued, run by the runners against the CPU engine
  through the LLM proxy, their spans read back and adapted to samples as each one finishes;
- reward/adapt: ``reward`` (token-level scores), ``old_log_prob`` (the actor's log probabilities
  of the samples) and ``adv`` (GRPO advantages, drop rules);
- update: ``update_actor`` (verl's PPO/GRPO loss, backward, optimizer step);
- weight sync: ``update_weights`` (the actor's weights exported by verl's engine and loaded into
  the CPU engine).

Prints a table and writes ``bench/results/verl_step_bench.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, Report

sys.path.insert(0, str(ROOT / "examples" / "verl_cpu"))
import train as cpu_train

PHASES = [
    ("rollout (gen)", ["timing_s/gen"]),
    ("reward/adapt (reward + old_log_prob + adv)", ["timing_s/reward", "timing_s/old_log_prob", "timing_s/adv"]),
    ("update (update_actor)", ["timing_s/update_actor"]),
    ("weight sync (update_weights)", ["timing_s/update_weights"]),
    ("whole step", ["timing_s/step"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--n", type=int, default=cpu_train.SETTINGS["n"], help="rollouts per task")
    parser.add_argument("--tasks", type=int, default=cpu_train.SETTINGS["tasks_per_step"], help="tasks per step")
    args = parser.parse_args()
    cpu_train.SETTINGS.update({"n": args.n, "tasks_per_step": args.tasks, "val_every": -1})
    from tiny_model import build

    workdir = Path(tempfile.mkdtemp(prefix="agl-verl-step-bench-"))
    model = build(workdir / "tiny-qwen2")
    started = time.monotonic()
    curve = cpu_train.train(model, workdir, steps=args.steps, val_before_train=False)
    wall = time.monotonic() - started
    steps = [m for m in curve["history"] if "timing_s/step" in m]
    measured = steps[1:] or steps
    report = Report(
        "verl training step on CPU (CPU rollout engine, local FSDP2 actor, cs strategy)",
        context={
            "steps": len(steps),
            "steps_measured": len(measured),
            "tasks_per_step": args.tasks,
            "n": args.n,
            "model_parameters": sum(p.numel() for p in _model_parameters(model)),
            "wall_seconds": wall,
        },
    )
    print(report.title)
    for name, keys in PHASES:
        per_step = [sum(m.get(k, 0.0) for k in keys) for m in measured]
        report.add(name, statistics.median(per_step), "s", note="median over steps after the first")
    report.add("rollouts per step", statistics.median(m.get("agl/rollouts", 0.0) for m in measured), "rollouts")
    report.add("LLM calls per step", statistics.median(m.get("agl/calls", 0.0) for m in measured), "calls")
    report.add(
        "rollouts per second in the rollout phase",
        statistics.median(m.get("agl/rollouts", 0.0) / m["timing_s/gen"] for m in measured if m.get("timing_s/gen")),
        "rollouts/s",
    )
    print()
    print(report.table())
    print(f"\nsaved {report.save('verl_step_bench')}")


def _model_parameters(model: Path) -> list:
    from transformers import AutoConfig, AutoModelForCausalLM

    return list(AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model)).parameters())


if __name__ == "__main__":
    main()
