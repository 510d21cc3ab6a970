"""The agent of ``train.py``: a module of its own, shipped to every node with the job's working
directory, where the runner actors import it by path. (Its name is its own: a module named
``agents`` would be shadowed by, or shadow, the OpenAI Agents SDK's package.)"""

from __future__ import annotations

from agl_core.litagent import rollout


@rollout
def parity(task: int) -> float:
    """Reward 1 for even numbers, 0 for odd ones."""
    return 1.0 if int(task) % 2 == 0 else 0.0
