"""The Trainer's ``RolloutConfig`` (and queue, labels, priority) applied to every rollout its
algorithm creates without them.

The algorithm gets a copy of the store whose backend fills in the config of each enqueued or
started rollout that does not set its own; everything else passes straight through, and the
store the strategy owns is left as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_core.types import convert
from agl_core.types.core import RolloutConfig


class RolloutDefaultsBackend:
    """A store backend that gives rollouts without a config ``config``; otherwise ``backend``."""

    def __init__(
        self,
        backend: Any,
        config: RolloutConfig | None,
        *,
        queue: str | None = None,
        labels: Mapping[str, str] | None = None,
        priority: int | None = None,
    ) -> None:
        self._backend = backend
        self._config: t.RolloutConfig | None = None
        if config is not None:
            self._config = t.RolloutConfig()
            convert.config_to_pb(config, self._config)
        self._queue = queue or ""
        self._labels = dict(labels or {})
        self._priority = priority or 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def _fill(self, spec: s.RolloutSpec) -> None:
        if self._config is not None and not spec.HasField("config"):
            spec.config.CopyFrom(self._config)
        if not spec.queue:
            spec.queue = self._queue
        if not spec.labels:
            spec.labels.update(self._labels)
        if not spec.priority:
            spec.priority = self._priority

    async def enqueue_rollouts(self, request: s.EnqueueRolloutsRequest) -> s.EnqueueRolloutsResponse:
        for spec in request.rollouts:
            self._fill(spec)
        return await self._backend.enqueue_rollouts(request)  # type: ignore[no-any-return]

    async def start_rollout(self, request: s.StartRolloutRequest) -> s.StartRolloutResponse:
        self._fill(request.rollout)
        return await self._backend.start_rollout(request)  # type: ignore[no-any-return]

    async def close(self) -> None:
        """The store belongs to the execution strategy, which closes it; an algorithm does not."""


def with_rollout_defaults(
    store: Any,
    config: RolloutConfig | None,
    *,
    queue: str | None = None,
    labels: Mapping[str, str] | None = None,
    priority: int | None = None,
) -> Any:
    """A view of ``store`` (same class, same connection) that applies ``config``, ``queue``,
    ``labels`` and ``priority`` to rollouts created without their own."""
    if config is None and not queue and not labels and not priority:
        return store
    view = copy.copy(store)
    view.backend = RolloutDefaultsBackend(store.backend, config, queue=queue, labels=labels, priority=priority)
    return view
