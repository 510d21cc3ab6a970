"""Resources: named, versioned sets of LLM endpoints, prompt templates and custom resources."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lmdb

from agl_core.errors import AlreadyExistsError, NotFoundError
from agl_core.proto import resources_pb2 as r
from agl_core.proto import store_pb2 as s
from agl_core.store import filters, routing, validation
from agl_core.store.lmdb.core import LmdbCore
from agl_core.store.lmdb.records import Tx, new_id
from agl_core.store.lmdb.schema import U64, Databases, MetaKey


def latest_key(namespace: str) -> bytes:
    """The meta key of a namespace's latest set; the default namespace keeps the key of stores made
    before namespaces existed, so their latest set stays the latest."""
    if namespace == routing.DEFAULT_NAMESPACE:
        return MetaKey.LATEST_RESOURCES
    return MetaKey.LATEST_RESOURCES + b"/" + namespace.encode()


def latest_resources_id(txn: lmdb.Transaction, dbs: Databases, namespace: str) -> str:
    """The id of the namespace's latest set, or "" when it has none."""
    raw = txn.get(latest_key(namespace), db=dbs.meta)
    return raw.decode() if raw else ""


def _namespace_of(update: r.ResourcesUpdate) -> str:
    return update.namespace or routing.DEFAULT_NAMESPACE


class ResourcesMixin(LmdbCore):
    """Add, update, get and query resources."""

    def _put_resources(self, tx: Tx, update: r.ResourcesUpdate) -> None:
        tx.txn.put(update.resources_id.encode(), update.SerializeToString(), db=self.dbs.resources)
        tx.txn.put(latest_key(_namespace_of(update)), update.resources_id.encode(), db=self.dbs.meta)

    async def add_resources(self, request: s.AddResourcesRequest) -> s.AddResourcesResponse:
        validation.optional_id(request.resources_id, "resources_id")
        validation.check_resources(request.resources)
        namespace = routing.namespace(request.namespace)

        def op(tx: Tx) -> r.ResourcesUpdate:
            resources_id = request.resources_id or new_id("rs")
            if tx.txn.get(resources_id.encode(), db=self.dbs.resources) is not None:
                raise AlreadyExistsError(
                    f"resources {resources_id!r} already exist; use UpdateResources to change them"
                )
            update = r.ResourcesUpdate(resources_id=resources_id, version=1, namespace=namespace)
            update.create_time.FromNanoseconds(tx.now_ns)
            update.update_time.FromNanoseconds(tx.now_ns)
            for name, resource in request.resources.items():
                update.resources[name].CopyFrom(resource)
            number = tx.next_meta(MetaKey.NEXT_RESOURCES_NUM)
            tx.txn.put(U64.pack(number), resources_id.encode(), db=self.dbs.resources_order)
            self._put_resources(tx, update)
            return update

        return s.AddResourcesResponse(resources=await self._write(op))

    async def update_resources(self, request: s.UpdateResourcesRequest) -> s.UpdateResourcesResponse:
        resources_id = validation.require_id(request.resources_id, "resources_id")
        validation.check_resources(request.resources)
        namespace = routing.namespace(request.namespace)

        def op(tx: Tx) -> r.ResourcesUpdate:
            raw = tx.txn.get(resources_id.encode(), db=self.dbs.resources)
            if raw is None:
                # Updating a set that does not exist yet creates it: a fixed name like "main" can be
                # published to from the first step on.
                update = r.ResourcesUpdate(resources_id=resources_id, version=1, namespace=namespace)
                update.create_time.FromNanoseconds(tx.now_ns)
                number = tx.next_meta(MetaKey.NEXT_RESOURCES_NUM)
                tx.txn.put(U64.pack(number), resources_id.encode(), db=self.dbs.resources_order)
            else:
                update = _with_namespace(r.ResourcesUpdate.FromString(raw))
                if update.namespace != namespace:
                    raise NotFoundError(
                        f"resources {resources_id!r} not found in namespace {namespace!r} (they belong to "
                        f"{update.namespace!r}); resources ids are unique across namespaces, choose another"
                    )
                update.version += 1
                update.ClearField("resources")
            update.update_time.FromNanoseconds(tx.now_ns)
            for name, resource in request.resources.items():
                update.resources[name].CopyFrom(resource)
            self._put_resources(tx, update)
            return update

        return s.UpdateResourcesResponse(resources=_with_namespace(await self._write(op)))

    async def get_resources(self, request: s.GetResourcesRequest) -> s.GetResourcesResponse:
        namespace = routing.namespace(request.namespace)
        with self._begin() as txn:
            resources_id = request.resources_id
            if not resources_id:
                resources_id = latest_resources_id(txn, self.dbs, namespace)
                if not resources_id:
                    raise NotFoundError(
                        f"no resources have been added yet in namespace {namespace!r}; add some with AddResources "
                        "in that namespace"
                    )
            raw = txn.get(resources_id.encode(), db=self.dbs.resources)
            if raw is None:
                raise NotFoundError(f"resources {request.resources_id!r} not found")
            update = _with_namespace(r.ResourcesUpdate.FromString(raw))
            if request.namespace and request.resources_id and update.namespace != namespace:
                raise NotFoundError(
                    f"resources {request.resources_id!r} not found in namespace {namespace!r} (they belong to "
                    f"{update.namespace!r})"
                )
            return s.GetResourcesResponse(resources=update)

    async def query_resources(self, request: s.QueryResourcesRequest) -> s.QueryResourcesResponse:
        limit, offset = validation.page(request.limit, request.offset)
        sort_by = validation.sort_field(request.sort_by, ("create_time", "update_time", "resources_id", "version"))
        desc = validation.descending(request.order)
        matches = filters.combine(
            filters.id_predicates(request.resources_id_in, request.resources_id_contains, lambda rid: rid),
            request.filter_logic,
        )
        namespace = None if request.all_namespaces else routing.namespace(request.namespace)

        def read(txn: lmdb.Transaction) -> list[tuple[int, r.ResourcesUpdate]]:
            items = []
            for number, resources_id in txn.cursor(db=self.dbs.resources_order):
                if not matches(resources_id.decode()):
                    continue
                raw = txn.get(resources_id, db=self.dbs.resources)
                if raw is not None:
                    update = _with_namespace(r.ResourcesUpdate.FromString(raw))
                    if namespace is None or update.namespace == namespace:
                        items.append((U64.unpack(number)[0], update))
            return items

        items = await self._read(read)  # on a read thread: it reads every resources record
        keys: dict[str, Callable[[tuple[int, r.ResourcesUpdate]], Any]] = {
            "create_time": lambda item: item[0],
            "update_time": lambda item: (item[1].update_time.ToNanoseconds(), item[0]),
            "resources_id": lambda item: item[1].resources_id,
            "version": lambda item: (item[1].version, item[0]),
        }
        items.sort(key=keys[sort_by], reverse=desc)
        return s.QueryResourcesResponse(
            resources=[update for _, update in items[offset : offset + limit]], total=len(items)
        )


def _with_namespace(update: r.ResourcesUpdate) -> r.ResourcesUpdate:
    """Sets stored before namespaces existed belong to the default one."""
    if not update.namespace:
        update.namespace = routing.DEFAULT_NAMESPACE
    return update
