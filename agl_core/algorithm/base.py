"""``Algorithm``: what trains an agent. It enqueues rollouts, reads what they produced (spans,
through an adapter) and publishes better resources.

The Trainer gives an algorithm its store, adapter, initial resources and datasets, then calls
:meth:`Algorithm.run` in the process the Trainer runs in. ``run`` may be a coroutine (it then
shares the store's event loop) or a plain method (it then runs in a thread and should use
:meth:`Algorithm.get_sync_store`).
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar

from agl_core.store.sync import SyncStore
from agl_core.types.core import RolloutConfig
from agl_core.types.resources import Resource, ResourcesUpdate


class Algorithm:
    """Base class of algorithms (built-in ones are plugins: see ``agl_algorithms``).

    :cvar dev_compatible: whether ``Trainer.dev()`` may run this algorithm (a quick, cheap pass
        over the data that exercises the whole pipeline).
    :ivar rollout_queue: the queue of the rollouts it enqueues without one (None: the Trainer's,
        else "default"); likewise ``rollout_labels`` and ``rollout_priority`` (docs/queues.md).
    """

    dev_compatible: ClassVar[bool] = False
    rollout_queue: str | None = None
    rollout_labels: Mapping[str, str] | None = None
    rollout_priority: int | None = None

    def __init__(self) -> None:
        self._store: Any = None
        self._adapter: Any = None
        self._initial_resources: dict[str, Resource] | None = None
        self._rollout_config: RolloutConfig | None = None
        self._trainer_ref: weakref.ReferenceType[Any] | None = None
        self._progress: Any = None
        self._dev = False

    @property
    def name(self) -> str:
        return type(self).__name__

    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.run)

    def run(self, train_dataset: Any = None, val_dataset: Any = None) -> Any:
        """Train (and validate). Returns whatever the algorithm reports as its result."""
        raise NotImplementedError(f"{self.name} does not implement run()")

    # --- what the Trainer gives it -----------------------------------------------------------------

    def set_store(self, store: Any) -> None:
        self._store = store

    def get_store(self) -> Any:
        """The store (async API, on the loop ``run`` runs on)."""
        if self._store is None:
            raise RuntimeError(f"{self.name} has no store yet; the Trainer sets it before run()")
        return self._store

    @property
    def store(self) -> Any:
        return self.get_store()

    def get_sync_store(self) -> SyncStore:
        """The store as blocking calls, for a synchronous ``run`` (which runs in a thread)."""
        store = self.get_store()
        return SyncStore(getattr(store, "store", store))

    def set_adapter(self, adapter: Any) -> None:
        self._adapter = adapter

    def get_adapter(self) -> Any:
        """The adapter that turns spans into training data."""
        if self._adapter is None:
            raise RuntimeError(
                f"{self.name} needs an adapter; give one with Trainer(adapter=...) "
                "(`agl plugins` lists those installed)"
            )
        return self._adapter

    def set_initial_resources(self, resources: Mapping[str, Resource] | None) -> None:
        self._initial_resources = dict(resources) if resources is not None else None

    def get_initial_resources(self) -> dict[str, Resource] | None:
        return self._initial_resources

    def set_rollout_config(self, config: RolloutConfig | None) -> None:
        self._rollout_config = config

    def get_rollout_config(self) -> RolloutConfig | None:
        """The policy the Trainer applies to every rollout enqueued without a config of its own."""
        return self._rollout_config

    def set_trainer(self, trainer: Any) -> None:
        self._trainer_ref = weakref.ref(trainer)

    def get_trainer(self) -> Any:
        trainer = self._trainer_ref() if self._trainer_ref is not None else None
        if trainer is None:
            raise RuntimeError(f"{self.name} is not run by a Trainer")
        return trainer

    def set_progress(self, progress: Any) -> None:
        self._progress = progress

    def report(self, line: str) -> None:
        """A line for the person running the training (e.g. one per training step): on the
        Trainer's progress output when it shows one, else in the log."""
        if self._progress is not None:
            self._progress.note(line)
        else:
            logging.getLogger(type(self).__module__).info("%s", line)

    def set_dev_mode(self, dev: bool) -> None:
        """Set by the Trainer: True when run by ``Trainer.dev()`` (a quick pass, see ``dev_compatible``)."""
        self._dev = dev

    def is_dev_mode(self) -> bool:
        return self._dev

    # --- helpers -----------------------------------------------------------------------------------

    async def publish_initial_resources(self) -> ResourcesUpdate | None:
        """Store the initial resources as the latest set (None when there are none)."""
        if not self._initial_resources:
            return None
        return await self.get_store().add_resources(self._initial_resources)  # type: ignore[no-any-return]
