"""Waiting for rollouts and watching their status changes (a part of
:class:`~agl_core.store.base.LightningStore`), and the :class:`RolloutWatch` subscription."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING

from agl_core.proto import store_pb2 as s
from agl_core.store.backend import StoreBackend
from agl_core.store.calls import _duration
from agl_core.types import convert
from agl_core.types.core import (
    Rollout,
    RolloutEvent,
    RolloutStatus,
)

if TYPE_CHECKING:
    pass


class WatchCalls:
    """Waiting and watching (a part of :class:`~agl_core.store.base.LightningStore`)."""

    backend: StoreBackend
    namespace: str

    async def wait_for_rollouts(self, rollout_ids: Sequence[str], *, timeout: float | None = None) -> list[Rollout]:
        """Wait until all the rollouts are terminal or ``timeout`` passes; returns the terminal ones."""
        request = s.WaitForRolloutsRequest(rollout_ids=list(rollout_ids))
        if timeout is not None:
            request.timeout.CopyFrom(_duration(max(0.0, timeout)))
        response = await self.backend.wait_for_rollouts(request)
        return [convert.rollout_from_pb(pb) for pb in response.rollouts]

    def watch_rollouts(
        self,
        *,
        rollout_ids: Iterable[str] | None = None,
        status_in: Iterable[RolloutStatus | str] | None = None,
        after_event_id: int | None = None,
        all_namespaces: bool = False,
    ) -> RolloutWatch:
        """Status changes as they happen, as an async iterator of :class:`RolloutEvent`.

        ``after_event_id`` resumes after an event seen before (0: from the first event); ``None``
        starts with the changes after the subscription. Use it as an async context manager to be
        sure the subscription is in place before acting::

            async with store.watch_rollouts(rollout_ids=ids) as watch:
                await store.update_rollout(ids[0], status="cancelled")
                async for event in watch: ...
        """
        request = s.WatchRolloutsRequest(
            rollout_ids=list(rollout_ids or ()),
            status_in=[convert.rollout_status_to_pb(st) for st in status_in or ()],
            namespace=self.namespace,
            all_namespaces=all_namespaces,
        )
        if after_event_id is not None:
            request.after_event_id = after_event_id
        return RolloutWatch(self.backend.watch_rollouts(request))


class RolloutWatch:
    """A subscription to rollout status changes (see :meth:`LightningStore.watch_rollouts`).

    :ivar last_event_id: the event log position reached so far; resume after it.
    """

    def __init__(self, responses: AsyncIterator[s.WatchRolloutsResponse]) -> None:
        self._responses = responses
        self._buffer: list[RolloutEvent] = []
        self.last_event_id: int | None = None

    async def _pull(self) -> bool:
        try:
            response = await anext(self._responses)
        except StopAsyncIteration:
            return False
        self.last_event_id = response.last_event_id
        self._buffer.extend(convert.event_from_pb(event) for event in response.events)
        return True

    async def __aenter__(self) -> RolloutWatch:
        # The first response confirms the subscription (it carries no events).
        await self._pull()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> RolloutWatch:
        return self

    async def __anext__(self) -> RolloutEvent:
        while not self._buffer:
            if not await self._pull():
                raise StopAsyncIteration
        return self._buffer.pop(0)

    async def aclose(self) -> None:
        aclose = getattr(self._responses, "aclose", None)
        if aclose is not None:
            await aclose()
