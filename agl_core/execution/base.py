"""Execution strategies: how the algorithm and the runners are laid out in threads, processes
and machines. Built-in ones (``shm``, ``cs``) and third-party ones are plugins
(``agl_execution_strategies``).

A strategy gets two things from the Trainer: the *algorithm bundle* (a coroutine function that
runs the algorithm given a store on the current event loop) and a :class:`RunnerSpec`
(everything a runner needs, picklable so it can travel to another process).
"""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from agl_core.litagent import LitAgent, rollout
from agl_core.plugins import AglPluginManager, get_plugin_manager

if TYPE_CHECKING:  # the runner and tracer (emitters, OpenTelemetry) load when a runner is built
    from agl_core.runner import Hook, Runner, WorkSource
    from agl_core.tracer.base import Tracer

AlgorithmBundle = Callable[[Any], Awaitable[Any]]


@dataclass
class RunnerSpec:
    """What a strategy needs to start runners anywhere.

    :param agent: the agent, or its import path ``"module:attribute"`` (a LitAgent, a LitAgent
        class, or a rollout function).
    :param tracer: the tracer spec (instance, class, registry name, dict; None: the default).
    :param capacity: attempts each runner runs at once.
    :param max_rollouts: each runner stops after this many attempts (None: never).
    :param namespace: the namespace (experiment) the runners serve (empty: the default one).
    :param queues: the queues they take work from (empty: "default").
    :param label_selector: only rollouts whose labels match (docs/queues.md).
    """

    agent: LitAgent[Any] | str
    tracer: Any = None
    hooks: Sequence[Hook] = field(default_factory=tuple)
    capacity: int = 1
    max_rollouts: int | None = None
    heartbeat_interval: float = 10.0
    namespace: str = ""
    queues: tuple[str, ...] = ()
    label_selector: str = ""
    # The plugin manager of the process that made the spec, for runners started in that process;
    # other processes load their own.
    plugin_manager: AglPluginManager | None = field(default=None, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["plugin_manager"] = None
        return state

    def get_plugin_manager(self, *, report_failures: bool = True) -> AglPluginManager:
        """The spec's plugin manager, or a new one (failures to load logged unless told not to:
        the process that started this one has reported them already)."""
        if self.plugin_manager is not None:
            return self.plugin_manager
        if report_failures:
            return get_plugin_manager()
        manager_log = logging.getLogger("agl_core.plugins.manager")
        disabled, manager_log.disabled = manager_log.disabled, True
        try:
            return get_plugin_manager()
        finally:
            manager_log.disabled = disabled

    def load_agent(self) -> LitAgent[Any]:
        return load_agent(self.agent)

    def build(
        self, *, agent: LitAgent[Any], store: Any, source: WorkSource, tracer: Tracer, pm: AglPluginManager
    ) -> Runner:
        from agl_core.runner import Runner

        return Runner(
            agent,
            store=store,
            source=source,
            tracer=tracer,
            hooks=self.hooks,
            plugin_manager=pm,
            max_rollouts=self.max_rollouts,
        )


def load_agent(agent: LitAgent[Any] | str | Any) -> LitAgent[Any]:
    """A LitAgent from an instance, an import path, a LitAgent class or a rollout function."""
    from agl_core.trainer.components import import_object

    target = import_object(agent) if isinstance(agent, str) else agent
    if isinstance(target, LitAgent):
        return target
    if inspect.isclass(target) and issubclass(target, LitAgent):
        return target()
    if callable(target):
        return rollout(target)
    raise TypeError(f"{agent!r} is not an agent; give a LitAgent, a LitAgent class or a rollout function")


class ExecutionStrategy(ABC):
    """Runs one algorithm bundle and ``n_runners`` runners until the algorithm is done."""

    name: ClassVar[str] = ""
    n_runners: int = 1

    @abstractmethod
    def execute(self, algorithm: AlgorithmBundle | None, runner: RunnerSpec, *, store: Any = None) -> Any:
        """Run to completion; returns what the algorithm returned.

        :param algorithm: None when this process runs no algorithm (a runner-only role).
        :param store: the Trainer's store spec (strategy-specific; None: the strategy's default).
        """
