"""Hooks and lifecycle plugins observe every attempt a runner serves, on both stores; a broken plugin
does not stop it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner_runs import Setup, conventions, run_all

from agl_core import semconv
from agl_core.plugins import get_plugin_manager, hookimpl
from agl_core.runner import Hook
from agl_core.tracer.base import Tracer
from agl_core.types import (
    AttemptStatus,
    Rollout,
    RolloutStatus,
    Span,
)

# --- hooks and lifecycle plugins -------------------------------------------------------------------


class RecordingHook(Hook):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def on_rollout_start(self, *, rollout: Rollout, **_: Any) -> None:
        self.calls.append(("rollout_start", rollout.input))

    def on_trace_start(self, *, rollout: Rollout, tracer: Tracer) -> None:  # a plain method works too
        self.calls.append(("trace_start", rollout.input))

    async def on_trace_end(self, *, rollout: Rollout) -> None:
        raise RuntimeError("a broken hook must not fail the attempt")

    async def on_rollout_end(self, *, rollout: Rollout, status: AttemptStatus, reward: float | None) -> None:
        self.calls.append(("rollout_end", f"{rollout.input}:{status}:{reward}"))


@dataclass
class LifecyclePlugin:
    events: list[tuple[str, Any]] = field(default_factory=list)

    @hookimpl
    def agl_on_rollout_start(self, rollout: Rollout, worker_id: str) -> None:
        self.events.append(("start", worker_id))

    @hookimpl
    async def agl_on_trace_end(self, error: BaseException | None) -> None:
        self.events.append(("trace_end", type(error).__name__ if error else None))

    @hookimpl
    def agl_on_rollout_end(self, status: AttemptStatus, spans: list[Span], error: BaseException | None) -> None:
        self.events.append(("end", (status, [s.name for s in spans])))


class BrokenPlugin:
    @hookimpl
    def agl_on_rollout_start(self) -> None:
        raise RuntimeError("broken observer")


async def test_hooks_and_lifecycle_plugins_observe_every_attempt(setup: Setup) -> None:
    hook = RecordingHook()
    plugin = LifecyclePlugin()
    pm = get_plugin_manager(load_entrypoints=False, plugins=[BrokenPlugin(), plugin])
    results = await run_all(setup, conventions, ["float", "raise"], hooks=[hook], plugin_manager=pm)
    assert [r.status for r in results] == [RolloutStatus.SUCCEEDED, RolloutStatus.FAILED]
    assert hook.calls == [
        ("rollout_start", "float"),
        ("trace_start", "float"),
        ("rollout_end", "float:succeeded:0.75"),
        ("rollout_start", "raise"),
        ("trace_start", "raise"),
        ("rollout_end", "raise:failed:None"),
    ]
    assert plugin.events == [
        ("start", "w"),
        ("trace_end", None),
        ("end", (AttemptStatus.SUCCEEDED, [semconv.SPAN_REWARD])),
        ("start", "w"),
        ("trace_end", "ValueError"),
        ("end", (AttemptStatus.FAILED, [semconv.SPAN_EXCEPTION])),
    ]
