"""Waiting on the store's event log in tests (no polling, a deadline instead)."""

from __future__ import annotations

import asyncio
from typing import Any

from agl_core.types import RolloutStatus


async def wait_status(store: Any, rollout_id: str, wanted: RolloutStatus, within: float = 10.0) -> None:
    """Return once the rollout has reached ``wanted`` (now or earlier); TimeoutError after ``within``."""

    async def watch() -> None:
        async for event in store.watch_rollouts(rollout_ids=[rollout_id], after_event_id=0):
            if event.new_status == wanted:
                return

    await asyncio.wait_for(watch(), within)
