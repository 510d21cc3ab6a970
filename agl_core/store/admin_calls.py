"""Workers, deletion, backup and stats: the operating calls of
:class:`~agl_core.store.base.LightningStore`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agl_core.errors import NotFoundError
from agl_core.proto import store_pb2 as s
from agl_core.store.backend import StoreBackend
from agl_core.store.calls import _logic, _order, _page_args
from agl_core.store.deletion import DeleteSummary
from agl_core.types import convert
from agl_core.types.core import (
    Page,
    RolloutStatus,
    Worker,
    WorkerStatus,
)
from agl_core.types.values import to_struct

if TYPE_CHECKING:
    from agl_core.store.backup_file import BackupInfo


class AdminCalls:
    """Workers, deletion, backup, stats (a part of :class:`~agl_core.store.base.LightningStore`)."""

    backend: StoreBackend
    namespace: str

    async def query_workers(
        self,
        *,
        status_in: Iterable[WorkerStatus | str] | None = None,
        worker_id_in: Iterable[str] | None = None,
        worker_id_contains: str | None = None,
        sort_by: str | None = None,
        order: str = "asc",
        limit: int | None = None,
        offset: int = 0,
        filter_logic: str = "and",
        all_namespaces: bool = False,
    ) -> Page[Worker]:
        """Workers matching the given filters (``filter_logic``: ``"and"`` or ``"or"``).
        ``status_in=None`` does not filter on status; ``status_in=[]`` matches no status."""
        limit_, offset_ = _page_args(limit, offset)
        request = s.QueryWorkersRequest(
            worker_id_in=list(worker_id_in or ()),
            worker_id_contains=worker_id_contains or "",
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
            request.status_filter.statuses.extend(convert.worker_status_to_pb(st) for st in status_in)
        response = await self.backend.query_workers(request)
        return Page([convert.worker_from_pb(pb) for pb in response.workers], response.total, limit_, offset_)

    async def get_worker(self, worker_id: str) -> Worker | None:
        try:
            response = await self.backend.get_worker(s.GetWorkerRequest(worker_id=worker_id))
        except NotFoundError:
            return None
        return convert.worker_from_pb(response.worker)

    async def update_worker(
        self,
        worker_id: str,
        *,
        heartbeat_stats: Mapping[str, Any] | None = None,
        status: WorkerStatus | str | None = None,
    ) -> Worker:
        """Record a heartbeat of a worker; ``status`` also sets its status (idle, busy, unknown)."""
        request = s.UpdateWorkerRequest(worker_id=worker_id)
        if heartbeat_stats is not None:
            request.heartbeat_stats.CopyFrom(to_struct(heartbeat_stats, "heartbeat_stats"))
        if status is not None:
            request.status = convert.worker_status_to_pb(status)
        return convert.worker_from_pb((await self.backend.update_worker(request)).worker)

    async def delete_rollouts(
        self,
        rollout_ids: Iterable[str] | None = None,
        *,
        ended_before: float | None = None,
        older_than: float | None = None,
        status_in: Iterable[RolloutStatus | str] | None = None,
        force: bool = False,
        dry_run: bool = False,
    ) -> DeleteSummary:
        """Delete rollouts with their attempts, spans and events: those matching every criterion given.

        :param ended_before: seconds since the epoch; rollouts that ended before it.
        :param older_than: seconds; rollouts that ended more than this long ago.
        :param status_in: only rollouts with these statuses.
        :param force: also delete rollouts that are not finished (queued, running); without it, naming
            one by id raises :class:`~agl_core.errors.FailedPreconditionError` and deletes nothing.
        :param dry_run: count what would be deleted, delete nothing.
        """
        request = s.DeleteRolloutsRequest(rollout_ids=list(rollout_ids or ()), force=force, dry_run=dry_run)
        if ended_before is not None:
            request.ended_before.FromNanoseconds(int(ended_before * 1e9))
        if older_than is not None:
            request.older_than.FromNanoseconds(int(older_than * 1e9))
        if status_in is not None:
            request.status_in.extend(convert.rollout_status_to_pb(st) for st in status_in)
        return DeleteSummary.from_pb(await self.backend.delete_rollouts(request))

    async def backup(self, dest: str | os.PathLike[str]) -> BackupInfo:
        """Write a compacted, consistent copy of the store to the new directory ``dest`` (on this
        machine, also when the store is an agl-server elsewhere). ``dest`` opens as a data directory."""
        # Imported here: backup_file uses the lmdb package's file modes, and that package imports this module.
        from agl_core.store import backup_file

        backup_file.prepare(dest)  # refuse a bad destination before the server starts copying
        return await backup_file.write(self.backend.backup_store(s.BackupStoreRequest()), dest)

    async def stats(self) -> dict[str, Any]:
        """Counts and sizes of what the store holds, as plain Python values."""
        response = await self.backend.get_stats(s.GetStatsRequest())
        stats: dict[str, Any] = {
            field.name: getattr(response, field.name)
            for field in response.DESCRIPTOR.fields
            if field.name not in ("rollouts_by_status", "start_time")
        }
        stats["rollouts_by_status"] = dict(response.rollouts_by_status)
        stats["start_time"] = convert.ts_to_float(response.start_time)
        return stats
