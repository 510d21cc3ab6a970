"""Algorithms: the :class:`Algorithm` base class, ``@algo`` for function algorithms, and helpers
to run batches of rollouts."""

from agl_core.algorithm.base import Algorithm
from agl_core.algorithm.decorator import FunctionalAlgorithm, algo
from agl_core.algorithm.rollouts import RolloutOutcome, mean_reward, read_reward, run_rollouts

__all__ = [
    "Algorithm",
    "FunctionalAlgorithm",
    "RolloutOutcome",
    "algo",
    "mean_reward",
    "read_reward",
    "run_rollouts",
]
