"""The ``ray`` strategy beside ``cs`` on this machine: time to start N runners, and rollouts/s.

Both run the same agent (``bench_agents.parity``, no work of its own) with the same Trainer and
store; each run starts its own agl-server and N runners:

- *start*: from ``fit()`` to the algorithm's first line, i.e. agl-server serving and every runner
  connected (both strategies wait for their runners before the algorithm starts). For ``ray``
  the Ray cluster is started once beforehand (its start-up is reported on its own line): what is
  timed is the server actor and the runner actors, as on a cluster that is already up;
- *rollouts/s*: the algorithm enqueues ``--tasks`` rollouts at once and waits until all are done.

    python bench/ray_strategy_bench.py                      # N = 1, 2, 4; 400 tasks
    python bench/ray_strategy_bench.py --runners 1 4 8 --tasks 1000 --label after

Results go to ``bench/results/ray_strategy_bench.json`` (or ``-LABEL.json``). The machine is a
shared 2-core box in development: compare the two columns of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_agents import parity
from common import ROOT, Report, saved_as

from agl_core.algorithm import algo
from agl_core.trainer import Trainer


def one_run(strategy: Any, runners: int, tasks: int, capacity: int) -> dict[str, float]:
    marks: dict[str, float] = {}

    @algo
    async def timed(*, store: Any) -> None:
        marks["algorithm"] = time.perf_counter()
        rollouts = await store.enqueue_rollouts([{"input": i} for i in range(tasks)])
        await store.wait_for_rollouts([r.rollout_id for r in rollouts], timeout=600)
        marks["done"] = time.perf_counter()

    trainer = Trainer(algorithm=timed, strategy=strategy, n_runners=runners, runner_capacity=capacity, progress=False)
    started = time.perf_counter()
    trainer.fit(parity, [])
    ended = time.perf_counter()
    return {
        "start_s": marks["algorithm"] - started,
        "rollouts_per_s": tasks / (marks["done"] - marks["algorithm"]),
        "stop_s": ended - marks["done"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runners", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--capacity", type=int, default=4, help="attempts each runner runs at once")
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    # Ray's workers import the agent by path: this directory on their path (they inherit the environment).
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, str(ROOT), os.environ.get("PYTHONPATH")) if p)
    from agl_plugins.strategies.on_ray.cluster import connect
    from agl_plugins.strategies.on_ray.strategy import RayStrategy

    report = Report(
        "ray strategy beside cs: runner start-up and rollouts/s (same agent, same Trainer)",
        context={"tasks": args.tasks, "capacity": args.capacity, "loadavg": os.getloadavg(), "label": args.label},
    )
    print(f"{report.title}; load average {os.getloadavg()[0]:.2f}")
    began = time.perf_counter()
    cluster = connect(None, {"num_cpus": os.cpu_count() or 2, "include_dashboard": False})
    report.add("ray: local cluster start (once)", time.perf_counter() - began, "s")
    results: dict[str, dict[int, dict[str, float]]] = {"cs": {}, "ray": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="agl-ray-bench-") as scratch:
            for n in args.runners:
                for name in ("cs", "ray"):
                    data_dir = Path(scratch, f"{name}-{n}")
                    strategy: Any
                    if name == "cs":
                        strategy = {"type": "cs", "data_dir": data_dir, "server_args": ["--durability", "nosync"]}
                    else:  # fractional CPUs: N runners fit on a 2-core cluster
                        strategy = RayStrategy(
                            data_dir=data_dir,
                            server_args=["--durability", "nosync"],
                            runner_resources={"num_cpus": 0.1},
                        )
                    results[name][n] = figures = one_run(strategy, n, args.tasks, args.capacity)
                    report.add(f"{name}: start {n} runner(s)", figures["start_s"], "s")
                    report.add(f"{name}: {n} runner(s), rollouts/s", figures["rollouts_per_s"], "rollouts/s")
    finally:
        cluster.close()
    report.context["results"] = results
    print()
    print(report.table())
    print()
    print("| runners | cs start (s) | ray start (s) | cs rollouts/s | ray rollouts/s |")
    print("|---|---|---|---|---|")
    for n in args.runners:
        cs, ray = results["cs"][n], results["ray"][n]
        print(
            f"| {n} | {cs['start_s']:.2f} | {ray['start_s']:.2f} | {cs['rollouts_per_s']:.0f} | "
            f"{ray['rollouts_per_s']:.0f} |"
        )
    path = report.save("ray_strategy_bench" + (f"-{args.label}" if args.label else ""))
    print(f"\nsaved {saved_as(path)}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
