"""The store API that algorithms, runners and scripts use: :class:`LightningStore`.

It is one class over any :class:`~agl_core.store.backend.StoreBackend`: ``LmdbStore(path)``
runs the store in-process on LMDB, ``GrpcStore("host:port")`` talks to agl-server. Both behave
the same, down to the exceptions (:mod:`agl_core.errors`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from agl_core.errors import AglError, BatchError, NotFoundError, error_for_code
from agl_core.proto import store_pb2 as s
from agl_core.store import routing
from agl_core.store.admin_calls import AdminCalls
from agl_core.store.backend import StoreBackend
from agl_core.store.calls import UNSET, _duration, _logic, _order, _page_args, _Unset
from agl_core.store.resource_calls import ResourceCalls
from agl_core.store.span_calls import SpanCalls
from agl_core.store.watch import RolloutWatch, WatchCalls
from agl_core.types import convert
from agl_core.types.core import (
    Attempt,
    AttemptStatus,
    Page,
    Rollout,
    RolloutConfig,
    RolloutMode,
    RolloutSpec,
    RolloutStatus,
)
from agl_core.types.values import to_struct, to_value


class LightningStore(SpanCalls, WatchCalls, ResourceCalls, AdminCalls):
    """The store: rollouts, attempts, spans, resources and workers.

    Every method is a coroutine (or an async iterator) and must run on one event loop; use
    :class:`~agl_core.store.sync.SyncStore` from synchronous code.
    """

    #: Rollouts per EnqueueRollouts request when a large batch is split.
    ENQUEUE_CHUNK = 1000

    def __init__(self, backend: StoreBackend, *, namespace: str = "") -> None:
        """:param namespace: the namespace (experiment) every call of this store is scoped to:
        rollouts it creates and finds, resources it adds and the latest set it reads. Empty:
        the default namespace. Use :meth:`with_namespace` for a view of another one."""
        self.backend = backend
        self.namespace = routing.namespace(namespace)

    def with_namespace(self, namespace: str) -> LightningStore:
        """A view of the same store (same backend, same connection) scoped to ``namespace``."""
        view = copy.copy(self)
        view.namespace = routing.namespace(namespace)
        return view

    async def __aenter__(self) -> LightningStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.backend.close()

    # --- rollouts ----------------------------------------------------------------------------------

    @staticmethod
    def _spec(
        input: Any,
        mode: RolloutMode | str | None,
        resources_id: str | None,
        config: RolloutConfig | Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
        rollout_id: str | None,
        queue: str | None = None,
        labels: Mapping[str, str] | None = None,
        priority: int = 0,
    ) -> s.RolloutSpec:
        spec = s.RolloutSpec()
        convert.spec_to_pb(
            RolloutSpec(
                input=input,
                mode=mode,
                resources_id=resources_id,
                config=RolloutConfig(**config) if isinstance(config, Mapping) else config,
                metadata=dict(metadata) if metadata else None,
                rollout_id=rollout_id,
                queue=queue,
                labels=dict(labels) if labels else None,
                priority=priority,
            ),
            spec,
        )
        return spec

    async def start_rollout(
        self,
        input: Any,
        *,
        mode: RolloutMode | str | None = None,
        resources_id: str | None = None,
        config: RolloutConfig | Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        rollout_id: str | None = None,
        worker_id: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Rollout:
        """Create a rollout and its first attempt at once, bypassing the queue. Without
        ``resources_id`` it records the namespace's latest resources."""
        request = s.StartRolloutRequest(
            rollout=self._spec(input, mode, resources_id, config, metadata, rollout_id, labels=labels),
            worker_id=worker_id or "",
            namespace=self.namespace,
        )
        return convert.rollout_from_pb((await self.backend.start_rollout(request)).rollout)

    async def enqueue_rollout(
        self,
        input: Any,
        *,
        mode: RolloutMode | str | None = None,
        resources_id: str | None = None,
        config: RolloutConfig | Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        rollout_id: str | None = None,
        queue: str | None = None,
        labels: Mapping[str, str] | None = None,
        priority: int = 0,
    ) -> Rollout:
        """Put a rollout at the back of its queue (status ``queuing``).

        :param queue: the queue to wait in (default ``"default"``); workers name the queues they serve.
        :param labels: matched by the workers' label selectors (e.g. ``{"lang": "go"}``).
        :param priority: 0 (default) to 1000; higher is dispatched first, equal ones in queue order.
        :param resources_id: the resources to run with; ``None`` records the namespace's latest now.
        """
        rollouts = await self.enqueue_rollouts(
            [
                RolloutSpec(
                    input=input,
                    mode=mode,
                    resources_id=resources_id,
                    config=config,
                    metadata=dict(metadata) if metadata else None,
                    rollout_id=rollout_id,
                    queue=queue,
                    labels=dict(labels) if labels else None,
                    priority=priority,
                )
            ]
        )
        return rollouts[0]

    async def enqueue_rollouts(self, specs: Iterable[RolloutSpec | Mapping[str, Any]]) -> list[Rollout]:
        """Enqueue many rollouts, in this order. Large batches go out in chunks of
        :attr:`ENQUEUE_CHUNK`, so a whole dataset is one call here without becoming one oversized
        message.

        :raises BatchError: if some items failed; the others are enqueued and listed in
            ``error.results`` (``None`` for a failed item).
        """
        requests: list[s.EnqueueRolloutsRequest] = []
        inputs: list[Any] = []  # the responses do not echo inputs back; the caller's objects are reused
        for spec in specs:
            if not requests or len(requests[-1].rollouts) >= self.ENQUEUE_CHUNK:
                requests.append(s.EnqueueRolloutsRequest(namespace=self.namespace))
            convert.spec_to_pb(spec, requests[-1].rollouts.add())
            inputs.append(spec["input"] if isinstance(spec, Mapping) else spec.input)
        if not requests:
            return []
        # Chunks go one after another so the queue keeps the order of ``specs``.
        responses = [await self.backend.enqueue_rollouts(request) for request in requests]
        results: list[Rollout | None] = []
        errors: list[tuple[int, AglError]] = []
        for response in responses:
            failed = {e.index: e for e in response.errors}
            base = len(results)
            for i, pb in enumerate(response.rollouts):
                if i in failed:
                    results.append(None)
                    errors.append((base + i, error_for_code(failed[i].code, failed[i].message)))
                else:
                    rollout = convert.rollout_from_pb(pb)
                    rollout.input = inputs[base + i]
                    results.append(rollout)
        if errors:
            raise BatchError(results, errors)
        return results  # type: ignore[return-value]

    async def dequeue_rollout(
        self,
        *,
        worker_id: str | None = None,
        wait: float | None = None,
        queues: Iterable[str] | None = None,
        label_selector: str | Mapping[str, str] | None = None,
        running: bool = False,
    ) -> Rollout | None:
        """Claim the next queued rollout of this store's namespace, creating its next attempt:
        the highest priority first, then the oldest.

        :param wait: seconds to wait for work when the queue is empty (a long poll); ``None`` or 0
            returns at once.
        :param queues: the queues to take from (default ``["default"]``).
        :param label_selector: only rollouts whose labels match, as text (``"lang=go,tier!=gpu"``,
            see docs/queues.md) or an equality map (``{"lang": "go"}``).
        :param running: claim the attempt RUNNING rather than PREPARING (rollout too), for a worker
            that starts it at once and so need not update it to RUNNING.
        :returns: the rollout with its new attempt, or ``None`` if no work came in time.
        """
        rollouts = await self.dequeue_rollouts(
            limit=1, worker_id=worker_id, wait=wait, queues=queues, label_selector=label_selector, running=running
        )
        return rollouts[0] if rollouts else None

    async def dequeue_rollouts(
        self,
        *,
        limit: int = 1,
        worker_id: str | None = None,
        wait: float | None = None,
        queues: Iterable[str] | None = None,
        label_selector: str | Mapping[str, str] | None = None,
        running: bool = False,
    ) -> list[Rollout]:
        request = s.DequeueRolloutRequest(
            worker_id=worker_id or "",
            limit=limit,
            namespace=self.namespace,
            queues=list(queues or ()),
            label_selector=routing.selector_text(label_selector),
            running=running,
        )
        if wait:
            request.wait.CopyFrom(_duration(wait))
        response = await self.backend.dequeue_rollout(request)
        return [convert.rollout_from_pb(pb) for pb in response.rollouts]

    async def start_attempt(self, rollout_id: str, *, worker_id: str | None = None) -> Rollout:
        """Create a new attempt for a rollout by hand (a manual retry)."""
        request = s.StartAttemptRequest(rollout_id=rollout_id, worker_id=worker_id or "")
        return convert.rollout_from_pb((await self.backend.start_attempt(request)).rollout)

    async def get_rollout(self, rollout_id: str) -> Rollout | None:
        """The rollout with its latest attempt, or ``None`` if there is no such rollout."""
        try:
            response = await self.backend.get_rollout(s.GetRolloutRequest(rollout_id=rollout_id))
        except NotFoundError:
            return None
        return convert.rollout_from_pb(response.rollout)

    async def query_rollouts(
        self,
        *,
        status_in: Iterable[RolloutStatus | str] | None = None,
        rollout_id_in: Iterable[str] | None = None,
        rollout_id_contains: str | None = None,
        mode: RolloutMode | str | None = None,
        sort_by: str | None = None,
        order: str = "asc",
        limit: int | None = None,
        offset: int = 0,
        filter_logic: str = "and",
        all_namespaces: bool = False,
    ) -> Page[Rollout]:
        """Rollouts of this store's namespace (every namespace with ``all_namespaces``) matching
        the given filters, one page at a time (``limit`` at most 1000).

        ``filter_logic="and"`` (default) keeps rollouts matching every given filter, ``"or"`` any.
        ``status_in=None`` does not filter on status; ``status_in=[]`` matches no status.
        ``sort_by`` is ``start_time`` (default), ``end_time``, ``rollout_id`` or ``status``.
        """
        limit_, offset_ = _page_args(limit, offset)
        request = s.QueryRolloutsRequest(
            rollout_id_in=list(rollout_id_in or ()),
            rollout_id_contains=rollout_id_contains or "",
            mode=convert.mode_to_pb(mode),
            sort_by=sort_by or "",
            order=_order(order),
            limit=limit_,
            offset=offset_,
            filter_logic=_logic(filter_logic),
            namespace=self.namespace,
            all_namespaces=all_namespaces,
        )
        if status_in is not None:
            request.status_filter.SetInParent()
            request.status_filter.statuses.extend(convert.rollout_status_to_pb(st) for st in status_in)
        response = await self.backend.query_rollouts(request)
        items = [convert.rollout_from_pb(pb) for pb in response.rollouts]
        return Page(items, response.total, limit_, offset_)

    async def query_attempts(
        self, rollout_id: str, *, order: str = "asc", limit: int | None = None, offset: int = 0
    ) -> Page[Attempt]:
        """The attempts of a rollout by sequence id."""
        limit_, offset_ = _page_args(limit, offset)
        request = s.QueryAttemptsRequest(rollout_id=rollout_id, order=_order(order), limit=limit_, offset=offset_)
        response = await self.backend.query_attempts(request)
        return Page([convert.attempt_from_pb(pb) for pb in response.attempts], response.total, limit_, offset_)

    async def get_latest_attempt(self, rollout_id: str) -> Attempt | None:
        rollout = await self.get_rollout(rollout_id)
        return rollout.attempt if rollout is not None else None

    async def update_rollout(
        self,
        rollout_id: str,
        *,
        status: RolloutStatus | str | _Unset = UNSET,
        input: Any = UNSET,
        mode: RolloutMode | str | _Unset | None = UNSET,
        resources_id: str | _Unset | None = UNSET,
        config: RolloutConfig | Mapping[str, Any] | _Unset = UNSET,
        metadata: Mapping[str, Any] | _Unset | None = UNSET,
    ) -> Rollout:
        """Change the given fields of a rollout. Setting ``status`` applies the lifecycle rules:
        ``queuing``/``requeuing`` put it back in the queue, a terminal status is final."""
        request = s.UpdateRolloutRequest(rollout_id=rollout_id)
        if not isinstance(status, _Unset):
            request.status = convert.rollout_status_to_pb(status)
        if not isinstance(input, _Unset):
            request.input.CopyFrom(to_value(input, "input"))
        if not isinstance(mode, _Unset):
            request.mode = convert.mode_to_pb(mode)
        if not isinstance(resources_id, _Unset):
            request.resources_id = resources_id or ""
        if not isinstance(config, _Unset):
            convert.config_to_pb(config, request.config)
            request.config.max_attempts = request.config.max_attempts or 1
        if not isinstance(metadata, _Unset):
            request.metadata.CopyFrom(to_struct(metadata))
        return convert.rollout_from_pb((await self.backend.update_rollout(request)).rollout)

    async def update_attempt(
        self,
        rollout_id: str,
        attempt_id: str,
        *,
        status: AttemptStatus | str | _Unset = UNSET,
        worker_id: str | _Unset = UNSET,
        last_heartbeat_time: float | _Unset = UNSET,
        metadata: Mapping[str, Any] | _Unset | None = UNSET,
    ) -> Attempt:
        """Change the given fields of an attempt (``attempt_id`` may be ``"latest"``). A status
        change of the latest attempt propagates to the rollout (retries included)."""
        request = s.UpdateAttemptRequest(rollout_id=rollout_id, attempt_id=attempt_id)
        if not isinstance(status, _Unset):
            request.status = convert.attempt_status_to_pb(status)
        if not isinstance(worker_id, _Unset):
            request.worker_id = worker_id
        if not isinstance(last_heartbeat_time, _Unset):
            convert.set_ts(request.last_heartbeat_time, last_heartbeat_time)
        if not isinstance(metadata, _Unset):
            request.metadata.CopyFrom(to_struct(metadata))
        return convert.attempt_from_pb((await self.backend.update_attempt(request)).attempt)


__all__ = ["UNSET", "LightningStore", "RolloutWatch"]
