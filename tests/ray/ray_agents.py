"""Agents the Ray strategy tests run in runner actors (a module of its own: the cluster's workers
import it by path; see ``conftest.py``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agl_core.litagent import rollout


@rollout
async def gated_agent(task: dict[str, Any]) -> float:
    """Reward 1 for even ``i``, 0 for odd; with ``gate`` (a file path) it first waits until the
    test creates that file, so the attempts in hand stay running until the test says."""
    gate = task.get("gate")
    if gate:
        async with asyncio.timeout(300):
            while not Path(gate).exists():  # noqa: ASYNC110  # another process makes the file: nothing to await
                await asyncio.sleep(0.05)
    return 1.0 if int(task["i"]) % 2 == 0 else 0.0
