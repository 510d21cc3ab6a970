"""Train the calculator math agent with GRPO on N GPUs: verl trains, agl runners roll out.

    pip install -e '.[verl,vllm]'
    python examples/verl_math/train.py --model Qwen/Qwen2.5-0.5B-Instruct --gpus 4 --runners 2

What it starts: agl-server (unless ``--store`` names a running one), ``--runners`` runner processes
(``agl runner``, ``--workers`` attempts at once each), then the verl trainer (Ray, FSDP actor, vLLM servers)
with ``config.yaml``. Every step the trainer publishes the LLM proxy in front of the vLLM servers as
the ``main_llm`` resource, enqueues ``rollout.n`` rollouts per task, and trains on what the runners'
calls recorded. Extra ``key=value`` arguments are hydra overrides of the verl config.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
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

    from agl_plugins.verl.algorithm import VERL
    from agl_server.process import ServerProcess

    server = None
    runners: list[subprocess.Popen[bytes]] = []
    address = args.store
    try:
        if address is None:
            server = ServerProcess(Path(tempfile.mkdtemp(prefix="agl-verl-math-")) / "data").start()
            address = server.address
            print(f"agl-server on {address} (log: {server.log_path})", flush=True)
        for i in range(args.runners):
            # agl's runner serving the agent on the Work stream, --workers attempts at once.
            command = [
                sys.executable,
                "-m",
                "agl_core.cli",
                "runner",
                "--server",
                address,
                "--agent",
                "agent:math_rollout",
                "--tracer",
                "agent:tracer",
                "--capacity",
                str(args.workers),
                "--worker-id",
                f"runner{i}",
            ]
            runners.append(subprocess.Popen(command, cwd=HERE))
        config = load_configs(args.config or [HERE / "config.yaml"])
        config.setdefault("agl", {})["store"] = address
        overrides = [
            f"actor_rollout_ref.model.path={args.model}",
            f"trainer.n_gpus_per_node={args.gpus}",
            f"trainer.nnodes={args.nodes}",
            *([f"trainer.total_training_steps={args.steps}"] if args.steps else []),
            *args.overrides,
        ]
        os.environ.setdefault("AGL_SERVER_ADDRESS", address)
        algorithm = VERL(config=config, overrides=overrides)
        algorithm.run(make_tasks(args.train_size, seed=1), make_tasks(args.val_size, seed=2))
    finally:
        for runner in runners:
            runner.terminate()
        for runner in runners:
            runner.wait(timeout=30)
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
