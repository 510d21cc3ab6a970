"""Rewards of rollouts for the table and the chart, read from their reward spans and remembered.

A rollout's reward is what the algorithms read (:func:`agl_core.algorithm.rollouts.read_reward`):
the last ``agl.reward`` span of its latest attempt. Reading it is a span query per rollout, so the
reward of a finished rollout is kept (bounded, least recently used first out); an unfinished one,
or one without a reward yet, is read again each time, since its reward may still come.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from agl_core import semconv
from agl_core.emitter.reward import find_final_reward
from agl_core.store.base import LightningStore
from agl_core.types.core import Rollout

# Finished rollouts whose reward is remembered (a float and an id each: about 150 bytes).
CACHE_ENTRIES = 20_000


class RewardReader:
    def __init__(self, store: LightningStore, entries: int = CACHE_ENTRIES) -> None:
        self.store = store
        self.entries = entries
        self._known: OrderedDict[str, float] = OrderedDict()

    async def reward(self, rollout: Rollout) -> float | None:
        rollout_id = rollout.rollout_id
        if rollout_id in self._known:
            self._known.move_to_end(rollout_id)
            return self._known[rollout_id]
        if rollout.attempt is None:
            return None
        spans = await self.store.query_spans(rollout_id, "latest", name=semconv.SPAN_REWARD)
        # A short read of LMDB that may not suspend at all: give gRPC its turn between rollouts.
        await asyncio.sleep(0)
        reward = find_final_reward(spans)
        # A finished rollout without a reward is read again next time: spans exported over OTLP may
        # arrive after the status change.
        if rollout.is_terminal and reward is not None:
            self._known[rollout_id] = reward
            while len(self._known) > self.entries:
                self._known.popitem(last=False)
        return reward

    async def series(self, rollouts: list[Rollout]) -> list[dict[str, Any]]:
        """Finished rollouts with a reward, grouped by namespace and the resources they ran with, each
        group in order of finishing: the points of the reward-over-time chart."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for rollout in rollouts:
            reward = await self.reward(rollout)
            if reward is None or rollout.end_time is None:
                continue
            points = groups.setdefault((rollout.namespace, rollout.resources_id or ""), [])
            points.append({"time": rollout.end_time, "reward": reward, "rollout_id": rollout.rollout_id})
        return [
            {"namespace": namespace, "resources_id": resources_id, "points": sorted(points, key=lambda p: p["time"])}
            for (namespace, resources_id), points in sorted(groups.items())
        ]
