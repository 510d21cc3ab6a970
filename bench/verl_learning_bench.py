"""The learning curve of GRPO on CPU, the policy serving its own rollouts (the learning test's run).

    python bench/verl_learning_bench.py [--steps 20]

Runs ``examples/verl_cpu/train.py`` (Trainer, ``cs`` strategy, the ``letters`` agent, the CPU
rollout engine, verl's GRPO) and keeps its curve: ``bench/results/verl_learning_curve.json``
(reward per step, loss, grad norm, step times, settings) and ``bench/results/verl_learning_curve.png``.
Prints the validation and training reward per step.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, ROOT

sys.path.insert(0, str(ROOT / "examples" / "verl_cpu"))
import train as cpu_train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=cpu_train.SETTINGS["steps"])
    args = parser.parse_args()
    from tiny_model import build

    workdir = Path(tempfile.mkdtemp(prefix="agl-verl-learning-"))
    try:
        model = build(workdir / "tiny-qwen2")
        started = time.monotonic()
        curve = cpu_train.train(model, workdir, steps=args.steps)
        curve["wall_seconds"] = time.monotonic() - started
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    curve["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (RESULTS / "verl_learning_curve.json").write_text(json.dumps(curve, indent=1, allow_nan=True) + "\n")
    cpu_train.plot(curve, RESULTS / "verl_learning_curve.png")
    print(f"| {'step':>4} | {'val reward':>10} | {'train reward':>12} | {'grad norm':>9} | {'step s':>6} |")
    print("|------|------------|--------------|-----------|--------|")
    for s in curve["steps"]:
        cells = [s["val_reward"], s["train_reward"], s["grad_norm"], s["seconds"]]
        text = ["" if v is None else f"{v:.3f}" for v in cells]
        print(f"| {s['step']:>4} | {text[0]:>10} | {text[1]:>12} | {text[2]:>9} | {text[3]:>6} |")
    print(f"\nwall {curve['wall_seconds']:.0f}s; saved {RESULTS / 'verl_learning_curve.json'} and .png")


if __name__ == "__main__":
    main()
