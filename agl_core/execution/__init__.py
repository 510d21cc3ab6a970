"""Execution strategies: the base class and the pieces the built-in ones share."""

from agl_core.execution.base import AlgorithmBundle, ExecutionStrategy, RunnerSpec, load_agent

__all__ = ["AlgorithmBundle", "ExecutionStrategy", "RunnerSpec", "load_agent"]
