"""Agents: :class:`LitAgent` and the decorators that make one of a function."""

from agl_core.litagent.decorators import FunctionalLitAgent, llm_rollout, prompt_rollout, rollout
from agl_core.litagent.litagent import LitAgent, RolloutResult

__all__ = ["FunctionalLitAgent", "LitAgent", "RolloutResult", "llm_rollout", "prompt_rollout", "rollout"]
