"""``Hook``: callbacks a runner makes around every attempt, for the code that starts it.

Give hooks to ``Trainer(hooks=[...])`` or ``Runner(hooks=[...])``. Override the methods you need,
as plain or ``async`` methods taking any subset of the keyword arguments shown; they run on the
runner's event loop (in the runner's process), so they must not block. An exception in a hook is
logged and the attempt carries on. Plugins observe the same moments through the ``agl_on_*``
hooks (:mod:`agl_core.plugins.hookspecs`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agl_core.litagent import LitAgent
    from agl_core.runner.runner import Runner
    from agl_core.tracer.base import Tracer
    from agl_core.types.core import AttemptStatus, Rollout
    from agl_core.types.spans import Span


class Hook:
    """Base class of runner hooks; every method does nothing unless overridden."""

    async def on_rollout_start(self, *, agent: LitAgent[Any], runner: Runner, rollout: Rollout) -> None:
        """Before the attempt runs (``rollout.attempt`` is the attempt)."""

    async def on_trace_start(self, *, agent: LitAgent[Any], runner: Runner, tracer: Tracer, rollout: Rollout) -> None:
        """Inside the trace context, right before the agent is called."""

    async def on_trace_end(self, *, agent: LitAgent[Any], runner: Runner, tracer: Tracer, rollout: Rollout) -> None:
        """Inside the trace context, right after the agent returned or raised."""

    async def on_rollout_end(
        self,
        *,
        agent: LitAgent[Any],
        runner: Runner,
        rollout: Rollout,
        spans: list[Span],
        status: AttemptStatus,
        reward: float | None,
        error: BaseException | None,
    ) -> None:
        """After the attempt's final status is in the store."""
