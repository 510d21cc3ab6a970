"""``LitAgent``: the agent a runner runs, one rollout at a time.

Subclass it and implement :meth:`LitAgent.rollout` (or :meth:`LitAgent.rollout_async`), or turn
a plain function into one with :func:`agl_core.litagent.rollout` and friends.

What a rollout returns decides what the store gets for the attempt:

- ``None``: the spans the tracer recorded while the agent ran (rewards included if the agent
  emitted them);
- a number: the final reward, stored as an ``agl.reward`` span next to the tracer's spans;
- a list of spans (``agl_core.types.Span``): those spans (rollout and attempt ids are filled in).

An exception fails the attempt (``failed``), with the exception stored as an ``agl.exception``
span; the rollout's retry policy decides what happens next.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from agl_core.types.core import Rollout
from agl_core.types.resources import NamedResources
from agl_core.types.spans import Span

if TYPE_CHECKING:
    from agl_core.runner.runner import Runner
    from agl_core.tracer.base import Tracer

T = TypeVar("T")

RolloutResult = None | float | int | list[Span]


class LitAgent(Generic[T]):
    """Base class of agents. ``T`` is the type of the task (the rollout's input).

    :ivar runner_queues: the queues the runners serving this agent take work from, unless the
        Trainer names them (None: the Trainer's queue, else "default").
    :ivar runner_label_selector: the label selector of those runners (docs/queues.md), e.g.
        ``"lang=py"``, unless the Trainer gives one.
    """

    runner_queues: Sequence[str] | None = None
    runner_label_selector: str | Mapping[str, str] | None = None

    def __init__(self) -> None:
        self._runner_ref: weakref.ReferenceType[Runner] | None = None
        self._trainer_ref: weakref.ReferenceType[Any] | None = None

    @property
    def name(self) -> str:
        return type(self).__name__

    def is_async(self) -> bool:
        """True when the agent implements the coroutine variants (the runner then awaits them on
        its loop; synchronous agents run in a worker thread)."""
        cls = type(self)
        return any(
            getattr(cls, method) is not getattr(LitAgent, method)
            for method in ("rollout_async", "training_rollout_async", "validation_rollout_async")
        )

    # --- what to implement -------------------------------------------------------------------------

    def rollout(self, task: T, resources: NamedResources, rollout: Rollout) -> RolloutResult:
        """Run one task synchronously.

        :param task: the rollout's input.
        :param resources: the resources the rollout runs with, by name (LLM endpoints, prompt
            templates, ...).
        :param rollout: the rollout, with its attempt (``rollout.attempt``); read-only.
        :returns: ``None``, a reward, or a list of spans (see the module documentation).
        """
        raise NotImplementedError(f"{self.name} implements neither rollout() nor rollout_async()")

    async def rollout_async(self, task: T, resources: NamedResources, rollout: Rollout) -> RolloutResult:
        """Run one task as a coroutine; same contract as :meth:`rollout`."""
        raise NotImplementedError(f"{self.name} implements neither rollout() nor rollout_async()")

    def training_rollout(self, task: T, resources: NamedResources, rollout: Rollout) -> RolloutResult:
        """A training rollout (mode ``train``); defaults to :meth:`rollout`."""
        return self.rollout(task, resources, rollout)

    def validation_rollout(self, task: T, resources: NamedResources, rollout: Rollout) -> RolloutResult:
        """A validation or test rollout (mode ``val``/``test``); defaults to :meth:`rollout`."""
        return self.rollout(task, resources, rollout)

    async def training_rollout_async(self, task: T, resources: NamedResources, rollout: Rollout) -> RolloutResult:
        return await self.rollout_async(task, resources, rollout)

    async def validation_rollout_async(self, task: T, resources: NamedResources, rollout: Rollout) -> RolloutResult:
        return await self.rollout_async(task, resources, rollout)

    # --- where it runs -----------------------------------------------------------------------------

    def set_runner(self, runner: Runner) -> None:
        self._runner_ref = weakref.ref(runner)

    @property
    def runner(self) -> Runner:
        """The runner running this agent (set when a runner starts)."""
        runner = self._runner_ref() if self._runner_ref is not None else None
        if runner is None:
            raise RuntimeError(f"{self.name} is not being run by a runner")
        return runner

    @property
    def tracer(self) -> Tracer:
        return self.runner.tracer

    def set_trainer(self, trainer: Any) -> None:
        self._trainer_ref = weakref.ref(trainer)

    @property
    def trainer(self) -> Any:
        """The Trainer that started this agent, in the process the Trainer runs in."""
        trainer = self._trainer_ref() if self._trainer_ref is not None else None
        if trainer is None:
            raise RuntimeError(f"{self.name} was not started by a Trainer in this process")
        return trainer

    def __getstate__(self) -> dict[str, Any]:
        # Runner processes get a copy of the agent; the references stay with their owners.
        state = self.__dict__.copy()
        state["_runner_ref"] = state["_trainer_ref"] = None
        return state
