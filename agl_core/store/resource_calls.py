"""Resources sets (prompt templates, model endpoints...): the resources calls of
:class:`~agl_core.store.base.LightningStore`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agl_core.errors import NotFoundError
from agl_core.proto import store_pb2 as s
from agl_core.store.backend import StoreBackend
from agl_core.store.calls import _logic, _order, _page_args
from agl_core.types import convert
from agl_core.types.core import Page
from agl_core.types.resources import Resource, ResourcesUpdate


class ResourceCalls:
    """Resources sets, versioned per namespace (a part of :class:`~agl_core.store.base.LightningStore`)."""

    backend: StoreBackend
    namespace: str

    async def add_resources(
        self, resources: Mapping[str, Resource | Mapping[str, Any]], *, resources_id: str | None = None
    ) -> ResourcesUpdate:
        """Store a new resources set in this store's namespace and make it the namespace's latest."""
        request = s.AddResourcesRequest(resources_id=resources_id or "", namespace=self.namespace)
        convert.resources_to_pb(resources, request.resources)
        return convert.resources_update_from_pb((await self.backend.add_resources(request)).resources)

    async def update_resources(
        self, resources_id: str, resources: Mapping[str, Resource | Mapping[str, Any]]
    ) -> ResourcesUpdate:
        """Replace the resources of set ``resources_id`` (creating it if new), bump its version and
        make it the latest of its namespace. A new set is created in this store's namespace."""
        request = s.UpdateResourcesRequest(resources_id=resources_id, namespace=self.namespace)
        convert.resources_to_pb(resources, request.resources)
        return convert.resources_update_from_pb((await self.backend.update_resources(request)).resources)

    async def get_resources(self, resources_id: str) -> ResourcesUpdate | None:
        if not resources_id:
            raise ValueError("resources_id is required; use get_latest_resources() for the latest set")
        return await self._get_resources(resources_id)

    async def get_latest_resources(self) -> ResourcesUpdate | None:
        """The latest set of this store's namespace."""
        return await self._get_resources("", namespace=self.namespace)

    async def _get_resources(self, resources_id: str, namespace: str = "") -> ResourcesUpdate | None:
        try:
            response = await self.backend.get_resources(
                s.GetResourcesRequest(resources_id=resources_id, namespace=namespace)
            )
        except NotFoundError:
            return None
        return convert.resources_update_from_pb(response.resources)

    async def query_resources(
        self,
        *,
        resources_id_in: Iterable[str] | None = None,
        resources_id_contains: str | None = None,
        sort_by: str | None = None,
        order: str = "asc",
        limit: int | None = None,
        offset: int = 0,
        filter_logic: str = "and",
        all_namespaces: bool = False,
    ) -> Page[ResourcesUpdate]:
        """Resources sets of this store's namespace (every one with ``all_namespaces``) matching
        the id filters (``filter_logic``: ``"and"`` or ``"or"``)."""
        limit_, offset_ = _page_args(limit, offset)
        request = s.QueryResourcesRequest(
            namespace=self.namespace,
            all_namespaces=all_namespaces,
            resources_id_in=list(resources_id_in or ()),
            resources_id_contains=resources_id_contains or "",
            filter_logic=_logic(filter_logic),
            sort_by=sort_by or "",
            order=_order(order),
            limit=limit_,
            offset=offset_,
        )
        response = await self.backend.query_resources(request)
        return Page(
            [convert.resources_update_from_pb(pb) for pb in response.resources], response.total, limit_, offset_
        )
