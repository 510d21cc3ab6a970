"""Train the calculator math agent with GRPO on N GPUs: verl trains, agl runners roll out.

    pip install -e '.[verl,vllm]'
    python examples/verl_math/train.py --model Qwen/Qwen2.5-0.5B-Instruct --gpus 4 --runners 2

What it starts, through agl's Trainer with the ``cs`` strategy: agl-server (unless ``--store`` names a
running one), ``--runners`` runner processes (``--workers`` attempts at once each), then the verl
trainer (Ray, FSDP actor, vLLM servers) with ``config.yaml``, in this process. Every step the
trainer publishes the LLM proxy in front of the vLLM servers as the ``main_llm`` resource, enqueues
``rollout.n`` rollouts per task, and trains on what the runners' calls recorded. Extra
``key=value`` arguments are hydra overrides of the verl config.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from agent import make_tasks  # noqa: E402


def load_configs(paths: list[Path]) -> dict[str, Any]:
    """The YAML files merged in order (later keys win, nested mappings merge)."""
    from omegaconf import OmegaConf

    merged = OmegaConf.merge(*(OmegaConf.create(yaml.safe_load(path.read_text())) for path in paths))
    return OmegaConf.to_container(merged)  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model path or hub name (a local dir for offline runs)")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs per node for verl (trainer.n_gpus_per_node)")
    parser.add_argument("--nodes", type=int, default=1, help="nodes for verl (trainer.nnodes)")
    parser.add_argument("--store", help="a running agl-server host:port (default: start one here)")
    parser.add_argument("--runners", type=int, default=1, help="runner processes to start (0: runners run elsewhere)")
    parser.add_argument("--workers", type=int, default=16, help="agents per runner process")
    parser.add_argument("--train-size", type=int, default=256)
    parser.add_argument("--val-size", type=int, default=32)
    parser.add_argument("--steps", type=int, help="stop after this many steps (trainer.total_training_steps)")
    parser.add_argument(
        "--config", type=Path, action="append", help="config files merged in order (default: config.yaml)"
    )
    parser.add_argument("overrides", nargs="*", help="hydra overrides, e.g. data.train_batch_size=32")
    args = parser.parse_args()

    from agent import math_rollout, tracer

    from agl_core.trainer import Trainer
    from agl_plugins.verl.algorithm import VERL

    config = load_configs(args.config or [HERE / "config.yaml"])
    overrides = [
        f"actor_rollout_ref.model.path={args.model}",
        f"trainer.n_gpus_per_node={args.gpus}",
        f"trainer.nnodes={args.nodes}",
        *([f"trainer.total_training_steps={args.steps}"] if args.steps else []),
        *args.overrides,
    ]
    # The cs strategy starts agl-server (or uses --store) and the runner processes; the verl
    # trainer runs here against the same server. With --runners 0, runners are started elsewhere:
    # `agl runner --server HOST:PORT --agent agent:math_rollout --tracer agent:tracer`.
    strategy: dict[str, Any] = {"type": "cs", "role": "both" if args.runners else "algorithm"}
    if not args.runners:  # remote runners reach agl-server and the LLM proxy from other machines
        strategy["host"] = "0.0.0.0"
        config.setdefault("agl", {}).setdefault("llm_proxy", {})["host"] = "0.0.0.0"
    if args.store:
        strategy["server_address"] = args.store
    trainer = Trainer(
        algorithm=VERL(config=config, overrides=overrides),
        strategy=strategy,
        n_runners=max(1, args.runners),
        runner_capacity=args.workers,
        tracer=tracer,
        progress="lines",
    )
    result = trainer.fit(math_rollout, make_tasks(args.train_size, seed=1), make_tasks(args.val_size, seed=2))
    print(f"trained {result.global_step} steps", flush=True)


if __name__ == "__main__":
    main()
