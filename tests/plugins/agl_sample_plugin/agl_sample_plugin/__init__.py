"""A third-party agl plugin: the ``sample-algo`` algorithm and an ``agl_on_rollout_end`` observer.

The observer appends one line per finished attempt to the file named by ``AGL_SAMPLE_PLUGIN_LOG``,
so a test can see it ran inside the runners (threads or processes).
"""

from __future__ import annotations

import os
from typing import Any

from agl_core import hookimpl
from agl_core.algorithm import Algorithm, mean_reward, run_rollouts


class SampleAlgorithm(Algorithm):
    """Runs the training set once and reports the mean reward, tagged with its own name."""

    def __init__(self, *, tag: str = "sample") -> None:
        super().__init__()
        self.tag = tag

    async def run(self, train_dataset: Any = None, val_dataset: Any = None) -> dict[str, Any]:
        outcomes = await run_rollouts(self.get_store(), train_dataset or [], mode="train")
        return {"algorithm": self.tag, "rollouts": len(outcomes), "mean_reward": mean_reward(outcomes)}


@hookimpl
def agl_algorithms() -> dict[str, Any]:
    return {"sample-algo": SampleAlgorithm}


@hookimpl
def agl_on_rollout_end(rollout: Any, status: Any, worker_id: str) -> None:
    path = os.environ.get("AGL_SAMPLE_PLUGIN_LOG")
    if path:
        with open(path, "a") as log:
            log.write(f"{rollout.rollout_id} {status} {worker_id}\n")
