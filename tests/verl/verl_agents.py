"""Agents and hooks of the Trainer-driven verl runs (``trainer_run.py``), importable by runner
processes (the ``cs`` strategy imports the agent by reference)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import openai

from agl_core.litagent import rollout
from agl_core.runner import Hook


@rollout
async def echo_agent(task: Any, rollout: Any, resources: Any) -> float:
    """One LLM call through the policy's resource; reward 1 for the first rollout of each task's
    group and 0 for the others, so that GRPO has something to compare."""
    llm = resources["main_llm"]
    client = openai.AsyncOpenAI(
        base_url=llm.get_base_url(rollout.rollout_id, rollout.attempt.attempt_id), api_key="t", max_retries=0
    )
    await client.chat.completions.create(model=llm.model, messages=[{"role": "user", "content": task["q"]}])
    return 1.0 if rollout.metadata["repeat"] == 0 else 0.0


class RecordingHook(Hook):
    """Writes a file per finished attempt (named by rollout id) under ``directory``; with
    ``kill_at_step`` set, SIGKILLs its own process when an attempt of that training step starts
    (an interruption in the middle of a step's rollouts, for the resume test)."""

    def __init__(self, directory: str, kill_at_step: int | None = None) -> None:
        self.directory = directory
        self.kill_at_step = kill_at_step

    async def on_rollout_start(self, *, rollout: Any, **_: Any) -> None:
        metadata = rollout.metadata or {}
        if (
            self.kill_at_step is not None
            and rollout.mode.value == "train"
            and metadata.get("step") == self.kill_at_step
        ):
            # Written aside and renamed: the other runner of this process may be starting a rollout of
            # the same step, and a plain write_text of it (which truncates first) could be cut short by
            # this kill, leaving the file empty. The rename leaves one runner's whole id.
            aside = Path(self.directory, f"killed.{rollout.rollout_id}")
            aside.write_text(rollout.rollout_id)
            os.replace(aside, Path(self.directory, "killed"))
            os.kill(os.getpid(), signal.SIGKILL)

    async def on_rollout_end(self, *, rollout: Any, status: Any, **_: Any) -> None:
        Path(self.directory, rollout.rollout_id).write_text(str(status.value))
