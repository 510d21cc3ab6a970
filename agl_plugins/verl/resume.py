"""agl's side of checkpoint and resume: a run id kept beside verl's checkpoints, and the rule for the
rollouts an interrupted step left in the store.

verl saves the actor (and critic, dataloader) under ``trainer.default_local_dir/global_step_N`` and
resumes from the latest one (``trainer.resume_mode: auto``). agl keeps ``agl_run.json`` in the same
directory: the run id, written before the first rollout (when the run saves checkpoints), and the
step of the latest checkpoint. Every rollout of the run is named ``ro-{run_id}-{mode}-{step}-...``
and every resources set ``verl-{run_id}-p{k}``, the policy after ``k`` updates (train step
``k + 1`` and the validation after step ``k`` run with it), so which policy made a rollout is read
off its ``resources_id``.

**Rule for the rollouts of an interrupted step.** A resumed run restarts at the step after the
checkpoint (step 1 when it was interrupted before its first checkpoint). Before its first
rollout, every rollout of the run that is not finished (queuing, running, requeuing, ...) is
cancelled in the store; finished ones are left as they are. None of them is counted: a step only
ever reads the rollouts it enqueued itself, so rollouts of a step that did not complete are never
trained on, reported or counted, however far they got. (Reusing the finished ones would be sound
only for rollouts made with exactly the checkpoint's policy and would mix two runs' sampling in
one group; cancelling is simpler and never counts twice.) The resumed step's resources set is
published again under the same id, with its version bumped. Validation before training runs only
when training starts at step 0.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agl_core.types import RolloutStatus

logger = logging.getLogger(__name__)

STATE_FILE = "agl_run.json"
_UNFINISHED = [
    RolloutStatus.QUEUING,
    RolloutStatus.PREPARING,
    RolloutStatus.RUNNING,
    RolloutStatus.REQUEUING,
]


@dataclass
class RunState:
    """What agl keeps beside verl's checkpoints (``agl_run.json``)."""

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    checkpoint_step: int = 0

    @staticmethod
    def path(checkpoint_dir: str | os.PathLike[str]) -> Path:
        return Path(checkpoint_dir) / STATE_FILE

    resumed: bool = field(default=False, compare=False)

    @classmethod
    def load_or_create(cls, checkpoint_dir: str | os.PathLike[str], *, resume: bool, persist: bool) -> RunState:
        """The saved state when resuming and one exists (``resumed`` is then True); else a new run.

        :param persist: save a new run's state at once (so that a run interrupted before its first
            checkpoint is found again); False when the run saves no checkpoints.
        """
        path = cls.path(checkpoint_dir)
        if resume and path.exists():
            state = cls(**json.loads(path.read_text()), resumed=True)
            logger.info("agl run %s resumes (checkpoint at step %d)", state.run_id, state.checkpoint_step)
            return state
        state = cls()
        if persist:
            state.save(checkpoint_dir)
        return state

    def save(self, checkpoint_dir: str | os.PathLike[str]) -> None:
        path = self.path(checkpoint_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({k: v for k, v in asdict(self).items() if k != "resumed"}))
        os.replace(temporary, path)  # atomic: a crash leaves the old state or the new one

    def resources_id(self, policy_version: int) -> str:
        """The resources set of the policy after ``policy_version`` updates."""
        return f"verl-{self.run_id}-p{policy_version}"


async def cancel_leftovers(store: Any, run_id: str) -> list[str]:
    """Cancel the unfinished rollouts of run ``run_id`` (see the module docstring); returns their ids."""
    prefix = f"ro-{run_id}-"
    cancelled: list[str] = []
    tried: set[str] = set()
    while True:
        page = await store.query_rollouts(status_in=_UNFINISHED, rollout_id_contains=prefix, limit=1000)
        ids = [r.rollout_id for r in page if r.rollout_id.startswith(prefix) and r.rollout_id not in tried]
        if not ids:
            return cancelled
        for rollout_id in ids:
            tried.add(rollout_id)
            try:
                await store.update_rollout(rollout_id, status="cancelled")
                cancelled.append(rollout_id)
            except Exception as exc:  # finished meanwhile: it stays finished, and is not counted either
                logger.info("rollout %s was not cancelled (%s); it is not counted either way", rollout_id, exc)


__all__ = ["STATE_FILE", "RunState", "cancel_leftovers"]
