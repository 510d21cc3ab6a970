"""Progress of a Trainer run, for the person running it: rollouts done and failed, reward so far.

It follows the store's event log (no polling of the store). On a terminal it keeps one live line
up to date; elsewhere (CI logs, files) it prints a line every ``interval`` seconds while anything
changes, so logs stay short and readable. A final summary line is printed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from agl_core.algorithm.rollouts import read_reward
from agl_core.trainer.result import SplitSummary
from agl_core.types.core import RolloutEvent, RolloutStatus

_QUEUED = {RolloutStatus.QUEUING, RolloutStatus.REQUEUING}
_RUNNING = {RolloutStatus.PREPARING, RolloutStatus.RUNNING}


@dataclass
class ModeCounts:
    """Counts of the rollouts of one mode (train, val, ...)."""

    total: int = 0
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    retries: int = 0
    rewards: list[float] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def mean_reward(self) -> float | None:
        return sum(self.rewards) / len(self.rewards) if self.rewards else None


class Progress:
    """Follows the rollouts of one run and reports them.

    :param stream: where lines go (default stderr).
    :param interval: seconds between lines when the stream is not a terminal.
    :param live: keep one line up to date in place (default: when the stream is a terminal).
    """

    def __init__(self, store: Any, *, stream: TextIO | None = None, interval: float = 5.0, live: bool | None = None):
        self.store = store
        self.stream = stream or sys.stderr
        self.interval = interval
        self.live = self.stream.isatty() if live is None else live
        self.modes: dict[str, ModeCounts] = {}
        self._status: dict[str, tuple[str, RolloutStatus]] = {}
        self._started = time.monotonic()
        self._changed = asyncio.Event()
        self._position = 0
        self._seen = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._reads: set[asyncio.Task[None]] = set()
        self._last_line = ""

    async def start(self) -> None:
        """Start following from now (the run's rollouts have not been enqueued yet)."""
        position = self._position = int((await self.store.stats())["last_event_id"])
        self._started = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._follow(position), name="agl-progress-follow"),
            asyncio.create_task(self._print_loop(), name="agl-progress-print"),
        ]

    async def stop(self, catch_up: float = 5.0) -> None:
        """Catch up with the event log (at most ``catch_up`` seconds), stop following and print
        the summary."""
        with contextlib.suppress(Exception):
            last = int((await self.store.stats())["last_event_id"])
            async with self._seen:
                await asyncio.wait_for(self._seen.wait_for(lambda: self._position >= last), catch_up)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._reads:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*self._reads, return_exceptions=True), 5.0)
        if self.modes:
            self._emit(self.line(final=True), final=True)

    # --- counting ----------------------------------------------------------------------------------

    async def _follow(self, position: int) -> None:
        events = self.store.watch_rollouts(after_event_id=position)
        try:
            async for event in events:
                self.observe(event)
                async with self._seen:
                    self._position = event.event_id
                    self._seen.notify_all()
        finally:
            with contextlib.suppress(Exception):
                await events.aclose()

    def observe(self, event: RolloutEvent) -> None:
        rollout = event.rollout
        mode = rollout.mode.value if rollout.mode is not None else "rollouts"
        counts = self.modes.setdefault(mode, ModeCounts())
        previous = self._status.get(event.rollout_id)
        if previous is None:
            counts.total += 1
        else:
            self._count(self.modes[previous[0]], previous[1], -1)
        if event.new_status == RolloutStatus.REQUEUING:
            counts.retries += 1
        self._count(counts, event.new_status, +1)
        self._status[event.rollout_id] = (mode, event.new_status)
        if event.new_status == RolloutStatus.SUCCEEDED:
            reward = rollout.attempt.metadata.get("reward") if rollout.attempt is not None else None
            if isinstance(reward, (int, float)):
                counts.rewards.append(float(reward))
            else:  # spans reported by other routes (another language's runner, OTLP): read them
                task = asyncio.create_task(self._read_reward(counts, event.rollout_id))
                self._reads.add(task)
                task.add_done_callback(self._reads.discard)
        self._changed.set()

    @staticmethod
    def _count(counts: ModeCounts, status: RolloutStatus, delta: int) -> None:
        if status in _QUEUED:
            counts.queued += delta
        elif status in _RUNNING:
            counts.running += delta
        elif status == RolloutStatus.SUCCEEDED:
            counts.succeeded += delta
        elif status == RolloutStatus.FAILED:
            counts.failed += delta
        elif status == RolloutStatus.CANCELLED:
            counts.cancelled += delta

    async def _read_reward(self, counts: ModeCounts, rollout_id: str) -> None:
        with contextlib.suppress(Exception):
            reward = await read_reward(self.store, rollout_id)
            if reward is not None:
                counts.rewards.append(reward)
                self._changed.set()

    def note(self, line: str) -> None:
        """Print a line of the algorithm's own (e.g. a training step's metrics) between progress
        lines; thread-safe enough for a line-buffered stream (one write per line)."""
        text = "agl: " + line
        if self.live:
            # Clear the live line, print the note, and redraw the live line under it.
            self.stream.write("\r\x1b[2K" + text + "\n" + self._last_line)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def summary(self) -> dict[str, SplitSummary]:
        """The counts so far, per mode."""
        return {
            mode: SplitSummary(
                rollouts=c.total,
                succeeded=c.succeeded,
                failed=c.failed,
                cancelled=c.cancelled,
                unfinished=c.queued + c.running,
                mean_reward=c.mean_reward,
            )
            for mode, c in self.modes.items()
        }

    # --- printing ----------------------------------------------------------------------------------

    def line(self, final: bool = False) -> str:
        elapsed = time.monotonic() - self._started
        parts = []
        for mode, c in self.modes.items():
            text = f"{mode} {c.done}/{c.total} done ({c.succeeded} ok, {c.failed} failed"
            text += f", {c.cancelled} cancelled)" if c.cancelled else ")"
            if not final and (c.running or c.queued):
                text += f", {c.running} running, {c.queued} queued"
            if c.retries:
                text += f", {c.retries} retried"
            if c.mean_reward is not None:
                text += f", reward {c.mean_reward:.3f}"
            parts.append(text)
        done = sum(c.done for c in self.modes.values())
        rate = done / elapsed if elapsed > 0 else 0.0
        prefix = "agl: finished" if final else "agl:"
        return f"{prefix} {' | '.join(parts)} | {rate:.1f} rollouts/s, {elapsed:.1f}s"

    async def _print_loop(self) -> None:
        period = 0.25 if self.live else self.interval
        while True:
            await self._changed.wait()
            self._changed.clear()
            line = self.line()
            if line != self._last_line:
                self._emit(line)
            await asyncio.sleep(period)

    def _emit(self, line: str, final: bool = False) -> None:
        self._last_line = line
        if self.live:
            self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
