"""What a run left in the store, read back from its data directory: every rollout, its terminal
status events and attempts, and the workers; and the check that each rollout ended exactly once."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agl_core.store import LmdbStore
from agl_core.types import AttemptStatus, RolloutEvent, RolloutStatus

TERMINAL = {RolloutStatus.SUCCEEDED, RolloutStatus.FAILED, RolloutStatus.CANCELLED}


@dataclass
class Ledger:
    """Everything the store recorded, read back from its data directory after the run."""

    rollouts: dict[str, Any]
    terminal_events: Counter[str]
    attempts: dict[str, list[Any]]
    workers: dict[str, Any]


async def read_ledger(data_dir: Path) -> Ledger:
    store = LmdbStore(data_dir)
    try:
        rollouts: dict[str, Any] = {}
        while True:
            page = await store.query_rollouts(limit=1000, offset=len(rollouts))
            rollouts.update((r.rollout_id, r) for r in page)
            if len(rollouts) >= page.total:
                break
        last = int((await store.stats())["last_event_id"])
        events: list[RolloutEvent] = []
        if last:
            async for event in store.watch_rollouts(after_event_id=0):
                events.append(event)
                if event.event_id >= last:
                    break
        terminal = Counter(e.rollout_id for e in events if e.new_status in TERMINAL)
        attempts = {rid: list(await store.query_attempts(rid)) for rid in rollouts}
        workers = {w.worker_id: w for w in await store.query_workers()}
        return Ledger(rollouts, terminal, attempts, workers)
    finally:
        await store.close()


def assert_each_exactly_once(ledger: Ledger, count: int) -> None:
    assert len(ledger.rollouts) == count
    assert all(r.status == RolloutStatus.SUCCEEDED for r in ledger.rollouts.values())
    # Exactly one terminal status event per rollout, and exactly one succeeded attempt.
    assert set(ledger.terminal_events) == set(ledger.rollouts)
    assert set(ledger.terminal_events.values()) == {1}
    for rollout_id, attempts in ledger.attempts.items():
        assert sum(a.status == AttemptStatus.SUCCEEDED for a in attempts) == 1, rollout_id
