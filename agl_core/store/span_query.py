"""Span queries of several rollouts in one call (``QuerySpansRequest.rollout_ids``).

Backends answer queries of one rollout; a query of many is run here as one such query per rollout,
in the order given, by agl-server (one gRPC call for the client, whatever the backend) and by an
in-process store. The checks say what to change in a request that cannot be run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from agl_core.errors import InvalidArgumentError
from agl_core.proto import store_pb2 as s
from agl_core.store import validation

# Rollouts one query may name: as many as a page of QueryRollouts returns.
MAX_QUERY_ROLLOUTS = validation.MAX_PAGE

T = TypeVar("T")


def rollout_requests(request: s.QuerySpansRequest) -> list[s.QuerySpansRequest] | None:
    """One query per rollout of ``request.rollout_ids``, or None when it names one (``rollout_id``)."""
    ids = request.rollout_ids
    if not ids:
        return None
    if request.rollout_id:
        raise InvalidArgumentError("set rollout_id (one rollout) or rollout_ids (several), not both")
    if len(ids) > MAX_QUERY_ROLLOUTS:
        raise InvalidArgumentError(
            f"rollout_ids names {len(ids)} rollouts; at most {MAX_QUERY_ROLLOUTS} per query: split them"
        )
    if request.limit or request.offset or request.after_sequence_id or request.include_total:
        raise InvalidArgumentError(
            "limit, offset, after_sequence_id and include_total page or tail one rollout's spans: "
            "leave them unset with rollout_ids, or query the rollout alone with rollout_id"
        )
    first: dict[str, int] = {}
    for i, rollout_id in enumerate(ids):
        validation.require_id(rollout_id, f"rollout_ids[{i}]")
        if rollout_id in first:
            raise InvalidArgumentError(f"rollout_ids[{i}] repeats rollout_ids[{first[rollout_id]}] ({rollout_id!r})")
        first[rollout_id] = i
    requests = []
    for rollout_id in ids:
        one = s.QuerySpansRequest()
        one.CopyFrom(request)
        one.ClearField("rollout_ids")
        one.rollout_id = rollout_id
        requests.append(one)
    return requests


async def each_rollout(
    query: Callable[[s.QuerySpansRequest], AsyncIterator[T]], request: s.QuerySpansRequest
) -> AsyncIterator[T]:
    """What ``query`` (a backend's query of one rollout) yields for every rollout ``request`` names,
    one rollout after the other; ``request`` itself when it names one."""
    requests = rollout_requests(request)
    if requests is None:
        async for item in query(request):
            yield item
        return
    for one in requests:
        async for item in query(one):
            yield item
