"""agl's state beside verl's checkpoints (agl_run.json) and the rule for an interrupted step's
rollouts, against a real LMDB store."""

from __future__ import annotations

import json
from pathlib import Path

from agl_core.store import LmdbStore
from agl_plugins.verl.resume import STATE_FILE, RunState, cancel_leftovers


def test_run_state_is_kept_only_by_runs_that_checkpoint(tmp_path: Path) -> None:
    assert not RunState.load_or_create(tmp_path / "a", resume=True, persist=False).resumed
    assert not (tmp_path / "a" / STATE_FILE).exists()  # no checkpoints, nothing written
    first = RunState.load_or_create(tmp_path / "b", resume=True, persist=True)
    assert not first.resumed and json.loads((tmp_path / "b" / STATE_FILE).read_text())["run_id"] == first.run_id
    first.checkpoint_step = 4
    first.save(tmp_path / "b")
    again = RunState.load_or_create(tmp_path / "b", resume=True, persist=True)
    assert again.resumed and (again.run_id, again.checkpoint_step) == (first.run_id, 4)
    fresh = RunState.load_or_create(tmp_path / "b", resume=False, persist=True)  # resume_mode: disable
    assert not fresh.resumed and fresh.run_id != first.run_id
    assert again.resources_id(3) == f"verl-{first.run_id}-p3"


async def test_unfinished_rollouts_of_the_run_are_cancelled_and_nothing_else(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "store")
    try:
        ids = ["ro-abc-train-3-p", "ro-abc-train-2-s", "ro-abc-train-3-q", "ro-other-train-3-q", "ro-abcd-train-3-q"]
        await store.enqueue_rollouts([{"rollout_id": rollout_id, "input": {}} for rollout_id in ids])
        # FIFO: the first is taken and left preparing (its runner died), the second succeeds.
        taken = await store.dequeue_rollout(worker_id="w", wait=1)
        assert taken is not None and taken.rollout_id == "ro-abc-train-3-p"
        done = await store.dequeue_rollout(worker_id="w", wait=1)
        assert done is not None and done.rollout_id == "ro-abc-train-2-s"
        await store.update_attempt(done.rollout_id, "latest", status="succeeded")
        cancelled = await cancel_leftovers(store, "abc")
        assert sorted(cancelled) == ["ro-abc-train-3-p", "ro-abc-train-3-q"]
        statuses = {r: (await store.get_rollout(r)).status.value for r in ids}  # type: ignore[union-attr]
        assert statuses == {
            "ro-abc-train-3-p": "cancelled",
            "ro-abc-train-2-s": "succeeded",  # finished: left as it is
            "ro-abc-train-3-q": "cancelled",
            "ro-other-train-3-q": "queuing",  # another run's
            "ro-abcd-train-3-q": "queuing",  # a run whose id merely starts like this one's
        }
        assert await cancel_leftovers(store, "abc") == []  # idempotent
    finally:
        await store.close()
