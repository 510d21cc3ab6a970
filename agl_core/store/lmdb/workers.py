"""Worker records: query, get, and the heartbeats and status a worker reports about itself."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agl_core.errors import InvalidArgumentError, NotFoundError
from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_core.store import filters, routing, rules, validation
from agl_core.store.lmdb.core import LmdbCore
from agl_core.store.lmdb.records import Tx


class WorkersMixin(LmdbCore):
    """Query, get and update workers."""

    async def query_workers(self, request: s.QueryWorkersRequest) -> s.QueryWorkersResponse:
        limit, offset = validation.page(request.limit, request.offset)
        sort_by = validation.sort_field(request.sort_by, ("worker_id", "last_heartbeat_time", "status"))
        desc = validation.descending(request.order)
        statuses = filters.status_set(request, rules.WORKER_STATUSES, "worker")
        predicates = filters.id_predicates(request.worker_id_in, request.worker_id_contains, lambda w: w.worker_id)
        if statuses is not None:
            predicates.append(lambda w: w.status in statuses)
        combined = filters.combine(predicates, request.filter_logic)
        namespace = None if request.all_namespaces else routing.namespace(request.namespace)

        def matches(w: t.Worker) -> bool:
            return (namespace is None or (w.namespace or routing.DEFAULT_NAMESPACE) == namespace) and combined(w)

        # On a read thread: it reads every worker record.
        workers = await self._read(
            lambda txn: [
                w for w in map(t.Worker.FromString, txn.cursor(db=self.dbs.workers).iternext(keys=False)) if matches(w)
            ]
        )
        keys: dict[str, Callable[[t.Worker], Any]] = {
            "worker_id": lambda w: w.worker_id,
            "last_heartbeat_time": lambda w: (w.last_heartbeat_time.ToNanoseconds(), w.worker_id),
            "status": lambda w: (w.status, w.worker_id),
        }
        workers.sort(key=keys[sort_by], reverse=desc)
        page = [_with_route(w) for w in workers[offset : offset + limit]]
        return s.QueryWorkersResponse(workers=page, total=len(workers))

    async def get_worker(self, request: s.GetWorkerRequest) -> s.GetWorkerResponse:
        worker_id = validation.require_id(request.worker_id, "worker_id")
        with self._begin() as txn:
            worker = Tx(txn, self.dbs).find_worker(worker_id)
        if worker is None:
            raise NotFoundError(f"worker {worker_id!r} not found")
        return s.GetWorkerResponse(worker=_with_route(worker))

    async def update_worker(self, request: s.UpdateWorkerRequest) -> s.UpdateWorkerResponse:
        _check_update(request)
        return s.UpdateWorkerResponse(worker=_with_route(await self._write(lambda tx: _apply_update(tx, request))))

    async def update_workers(self, requests: Sequence[s.UpdateWorkerRequest]) -> None:
        """Several :meth:`update_worker` calls in one store operation, applied in order: agl-server
        writes the heartbeats of all its Work streams so (one operation, and one wake-up of its
        caller, per many workers instead of per worker). All are checked before any is written."""
        for request in requests:
            _check_update(request)

        def op(tx: Tx) -> None:
            for request in requests:
                _apply_update(tx, request)

        await self._write(op)


def _check_update(request: s.UpdateWorkerRequest) -> None:
    """Raises InvalidArgumentError for an update that cannot be applied."""
    validation.require_id(request.worker_id, "worker_id")
    if request.HasField("status") and (request.status not in t.WorkerStatus.values() or request.status == 0):
        raise InvalidArgumentError(f"status {request.status} is not a worker status; use idle, busy or unknown")


def _apply_update(tx: Tx, request: s.UpdateWorkerRequest) -> t.Worker:
    # A worker first heard of here has told nothing about its work yet: UNKNOWN until it says (or
    # the store sees it take or finish an attempt).
    worker = tx.find_worker(request.worker_id) or t.Worker(worker_id=request.worker_id, status=t.WORKER_STATUS_UNKNOWN)
    worker.last_heartbeat_time.FromNanoseconds(tx.now_ns)
    if request.HasField("heartbeat_stats"):
        worker.heartbeat_stats.CopyFrom(request.heartbeat_stats)
    if request.HasField("status"):
        worker.status = request.status
    tx.put_worker(worker)
    return worker


def _with_route(worker: t.Worker) -> t.Worker:
    """A worker that has not said what it serves (yet) serves the defaults."""
    if not worker.namespace:
        worker.namespace = routing.DEFAULT_NAMESPACE
    if not worker.queues:
        worker.queues.append(routing.DEFAULT_QUEUE)
    return worker
