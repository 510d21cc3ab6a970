"""Algorithms: the :class:`Algorithm` base class, ``@algo`` for function algorithms, and helpers
to run batches of rollouts."""

from typing import TYPE_CHECKING

from agl_core._lazy import lazy_exports

if TYPE_CHECKING:
    from agl_core.algorithm.base import Algorithm
    from agl_core.algorithm.decorator import FunctionalAlgorithm, algo
    from agl_core.algorithm.rollouts import RolloutOutcome, mean_reward, read_reward, run_rollouts

# Loaded on first use: the rollout helpers bring the emitters and OpenTelemetry with them, which
# a process that only registers an algorithm plugin does not need.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Algorithm": "agl_core.algorithm.base",
        "FunctionalAlgorithm": "agl_core.algorithm.decorator",
        "algo": "agl_core.algorithm.decorator",
        "RolloutOutcome": "agl_core.algorithm.rollouts",
        "mean_reward": "agl_core.algorithm.rollouts",
        "read_reward": "agl_core.algorithm.rollouts",
        "run_rollouts": "agl_core.algorithm.rollouts",
    },
)

__all__ = [
    "Algorithm",
    "FunctionalAlgorithm",
    "RolloutOutcome",
    "algo",
    "mean_reward",
    "read_reward",
    "run_rollouts",
]
