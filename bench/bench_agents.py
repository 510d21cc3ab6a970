"""Agents the benches run in runner processes and Ray actors (a module of its own: those import it by path)."""

from __future__ import annotations

import asyncio
from typing import Any

from agl_core.litagent import rollout


@rollout
async def parity(task: Any) -> float:
    """Reward 1 for even numbers, 0 for odd ones (no work: the figure is the execution layer's)."""
    await asyncio.sleep(0)
    return 1.0 if int(task) % 2 == 0 else 0.0
