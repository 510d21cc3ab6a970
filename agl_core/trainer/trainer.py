"""``Trainer``: wires an algorithm, runners and a store together and runs them.

    trainer = Trainer(algorithm="baseline", strategy="cs", n_runners=4)
    result = trainer.fit(agent, train_dataset, val_dataset=val_dataset)

Every component (algorithm, strategy, tracer, adapter) may be given as an instance, a class, a
factory, a registry name (a plugin's, see ``agl plugins``), ``"module:attribute"``, or a dict
``{"type": name, **options}``.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agl_core.adapter.base import Adapter
from agl_core.algorithm.base import Algorithm
from agl_core.execution.base import AlgorithmBundle, ExecutionStrategy, RunnerSpec, load_agent
from agl_core.litagent import LitAgent
from agl_core.plugins import AglPluginManager, get_plugin_manager
from agl_core.runner.hooks import Hook
from agl_core.store import routing
from agl_core.trainer.components import build, default_tracer
from agl_core.trainer.progress import Progress
from agl_core.trainer.result import FitResult, SplitSummary
from agl_core.trainer.rollout_defaults import with_rollout_defaults
from agl_core.types.core import AttemptStatus, RolloutConfig
from agl_core.types.resources import Resource

logger = logging.getLogger(__name__)


@dataclass
class _Outcome:
    """What the algorithm returned and the run's counts, carried back through the strategy."""

    result: Any
    splits: dict[str, SplitSummary]


def default_rollout_config() -> RolloutConfig:
    """Three attempts per rollout; an attempt that times out or whose runner disappears is retried,
    one that fails (the agent raised) is not: the same task would most likely fail again."""
    return RolloutConfig(max_attempts=3, retry_condition=[AttemptStatus.UNRESPONSIVE, AttemptStatus.TIMEOUT])


class Trainer:
    """Runs an algorithm against runners that serve an agent.

    :param algorithm: the algorithm (default for :meth:`fit`: ``baseline``).
    :param strategy: how algorithm and runners are laid out (default ``shm``: threads in this
        process; ``cs``: agl-server and runner processes).
    :param n_runners: runners to start (overrides the strategy's own setting).
    :param runner_capacity: attempts each runner runs at once.
    :param tracer: the runners' tracer (default ``otel`` when installed, else none).
    :param adapter: the adapter the algorithm turns spans into training data with.
    :param store: the store, as the strategy takes it (``shm``: a LightningStore, or a backend
        name/dict; ``cs``: a GrpcStore of a running agl-server). Default: a fresh one.
    :param initial_resources: resources the algorithm starts from (prompt templates, LLMs).
    :param hooks: :class:`~agl_core.runner.Hook` objects the runners call around every attempt.
    :param rollout_config: timeouts and retries of every rollout the algorithm enqueues without a
        config of its own (a RolloutConfig or its fields as a dict; default
        :func:`default_rollout_config`).
    :param max_rollouts: each runner stops after this many attempts.
    :param progress: show progress (rollouts done and failed, reward so far) on stderr: ``True``
        keeps one live line on a terminal and prints periodic lines elsewhere; ``"lines"`` always
        prints lines (e.g. when the algorithm prints too); ``False`` shows nothing.
    :param progress_interval: seconds between progress lines when stderr is not a terminal.
    :param namespace: the namespace (experiment) of this Trainer: its rollouts, resources and
        runners. Two Trainers with different namespaces share one agl-server without seeing each
        other's work or resources. Empty: the default namespace.
    :param queue: the queue of the rollouts the algorithm enqueues (default: the algorithm's
        ``rollout_queue``, else "default"); runners serve it unless ``runner_queues`` says otherwise.
    :param labels: labels of those rollouts (default: the algorithm's ``rollout_labels``).
    :param priority: their priority, 0 to 1000 (default: the algorithm's ``rollout_priority``, else 0).
    :param runner_queues: the queues the runners serve (default: ``[queue]``, else the agent's
        ``runner_queues``, else "default").
    :param label_selector: the runners' label selector (default: the agent's
        ``runner_label_selector``); see docs/queues.md.
    """

    def __init__(
        self,
        *,
        algorithm: Any = None,
        strategy: Any = None,
        n_runners: int | None = None,
        runner_capacity: int = 1,
        tracer: Any = None,
        adapter: Any = None,
        store: Any = None,
        initial_resources: Mapping[str, Resource] | None = None,
        hooks: Hook | Sequence[Hook] | None = None,
        rollout_config: RolloutConfig | Mapping[str, Any] | None = None,
        max_rollouts: int | None = None,
        progress: bool | Literal["live", "lines"] = True,
        progress_interval: float = 5.0,
        plugin_manager: AglPluginManager | None = None,
        namespace: str = "",
        queue: str | None = None,
        labels: Mapping[str, str] | None = None,
        priority: int | None = None,
        runner_queues: Sequence[str] | None = None,
        label_selector: str | Mapping[str, str] | None = None,
    ) -> None:
        # Checked now, so a typo fails at construction and not in the middle of a run.
        self.namespace = routing.namespace(namespace)
        self.queue = routing.queue(queue) if queue else None
        if labels:
            routing.check_labels(labels)
        self.labels = dict(labels) if labels else None
        self.priority = routing.check_priority(priority) if priority is not None else None
        self.runner_queues = routing.queues(runner_queues) if runner_queues else None
        self.label_selector = routing.parse_selector(routing.selector_text(label_selector)).text or None
        self.plugin_manager = plugin_manager or get_plugin_manager()
        pm = self.plugin_manager
        self.algorithm: Algorithm | None = build(algorithm, kind="algorithms", base=Algorithm, pm=pm)
        self.strategy: ExecutionStrategy = build(
            strategy if strategy is not None else "shm",
            kind="execution_strategies",
            base=ExecutionStrategy,
            pm=pm,
        )
        if n_runners is not None:
            if n_runners < 1:
                raise ValueError(f"n_runners is {n_runners}; start at least one runner")
            self.strategy.n_runners = n_runners
        if runner_capacity < 1:
            raise ValueError(f"runner_capacity is {runner_capacity}; a runner runs at least one attempt at a time")
        self.runner_capacity = runner_capacity
        if isinstance(tracer, str) and ":" not in tracer:
            pm.lookup("tracers", tracer)  # a misspelt name fails here, not in every runner
        # The default is decided once here, so runner processes do not each warn about it.
        self.tracer = tracer if tracer is not None else default_tracer(pm)
        self.adapter: Adapter[Any, Any] | None = build(adapter, kind="adapters", base=Adapter, pm=pm)
        self.store = store
        self.initial_resources = dict(initial_resources) if initial_resources is not None else None
        self.hooks: list[Hook] = [hooks] if isinstance(hooks, Hook) else list(hooks or ())
        if isinstance(rollout_config, Mapping):
            rollout_config = RolloutConfig(**rollout_config)
        self.rollout_config = rollout_config if rollout_config is not None else default_rollout_config()
        self.max_rollouts = max_rollouts
        self.progress = progress
        self.progress_interval = progress_interval

    # --- running -----------------------------------------------------------------------------------

    def fit(self, agent: LitAgent[Any] | Any, train_dataset: Any = None, val_dataset: Any = None) -> FitResult:
        """Train ``agent`` on ``train_dataset`` (validating on ``val_dataset``).

        :returns: a :class:`~agl_core.trainer.result.FitResult`: the rollouts counted by status, the
            mean reward, an overall status (``failed`` when every rollout failed, with a warning
            logged) and, in ``.result``, what the algorithm returned.

        :param agent: a LitAgent, a decorated rollout function, or ``"module:attribute"``.
        """
        algorithm = self.algorithm or build("baseline", kind="algorithms", base=Algorithm, pm=self.plugin_manager)
        return self._run(agent, algorithm, train_dataset, val_dataset, dev=False)

    def dev(self, agent: LitAgent[Any] | Any, train_dataset: Any = None, val_dataset: Any = None) -> FitResult:
        """A dry run of the whole pipeline with a quick algorithm (``baseline`` unless the configured
        algorithm is ``dev_compatible``): to check an agent, its resources and its rewards before
        training."""
        algorithm = self.algorithm
        if algorithm is None:
            algorithm = build("baseline", kind="algorithms", base=Algorithm, pm=self.plugin_manager)
        elif not algorithm.dev_compatible:
            raise TypeError(
                f"dev() runs quick, dev-compatible algorithms and {algorithm.name} is not one; "
                "leave algorithm unset "
                "to use the baseline, or call fit()"
            )
        return self._run(agent, algorithm, train_dataset, val_dataset, dev=True)

    def _run(self, agent: Any, algorithm: Algorithm, train_dataset: Any, val_dataset: Any, *, dev: bool) -> FitResult:
        agent = load_agent(agent)
        agent.set_trainer(self)
        algorithm.set_trainer(self)
        algorithm.set_adapter(self.adapter)
        algorithm.set_initial_resources(self.initial_resources)
        algorithm.set_rollout_config(self.rollout_config)
        algorithm.set_dev_mode(dev)
        queue = self.queue or algorithm.rollout_queue
        selector = self.label_selector or routing.selector_text(agent.runner_label_selector)
        spec = RunnerSpec(
            agent=agent,
            tracer=self.tracer,
            hooks=tuple(self.hooks),
            capacity=self.runner_capacity,
            max_rollouts=self.max_rollouts,
            plugin_manager=self.plugin_manager,
            namespace=self.namespace,
            queues=routing.queues(self.runner_queues or ([queue] if queue else None) or agent.runner_queues or ()),
            label_selector=routing.parse_selector(selector, "label_selector").text,
        )
        outcome = self.strategy.execute(
            self._algorithm_bundle(algorithm, train_dataset, val_dataset), spec, store=self.store
        )
        if not isinstance(outcome, _Outcome):  # a strategy role that runs no algorithm here
            return FitResult.of(outcome, {})
        result = FitResult.of(outcome.result, outcome.splits)
        if result.status == "failed":
            logger.warning(
                "every rollout of this run failed (%s); the agent raised or its resources are missing "
                "(initial_resources=...): the stored agl.exception spans say why, and Trainer.dev() "
                "checks an agent quickly",
                result,
            )
        return result

    def _algorithm_bundle(self, algorithm: Algorithm, train_dataset: Any, val_dataset: Any) -> AlgorithmBundle:
        async def run(store: Any) -> Any:
            store = store.with_namespace(self.namespace)
            algorithm.set_store(
                with_rollout_defaults(
                    store,
                    self.rollout_config,
                    queue=self.queue or algorithm.rollout_queue,
                    labels=self.labels or algorithm.rollout_labels,
                    priority=self.priority if self.priority is not None else algorithm.rollout_priority,
                )
            )
            # Progress always counts (the FitResult is made of its counts); it prints only when asked.
            if self.progress:
                live = {"live": True, "lines": False}.get(self.progress) if isinstance(self.progress, str) else None
                progress = Progress(store, interval=self.progress_interval, live=live)
            else:
                # Silent: it still counts the rollouts for the FitResult.
                progress = Progress(store, stream=io.StringIO(), interval=3600.0, live=False)
            await progress.start()
            # The algorithm prints its own lines (e.g. a training step's metrics) only when progress is on.
            algorithm.set_progress(progress if self.progress else None)
            try:
                if algorithm.is_async():
                    result = await algorithm.run(train_dataset, val_dataset)
                else:
                    # A synchronous algorithm blocks; it runs in a thread and reaches the store through
                    # get_sync_store(), whose calls come back to this loop.
                    result = await asyncio.to_thread(algorithm.run, train_dataset, val_dataset)
            finally:
                algorithm.set_progress(None)
                await progress.stop()
            return _Outcome(result, progress.summary())

        return run
