"""EnqueueRollouts at the edge: each item is checked alone, so one bad item fails alone.

The protocol promises per-item outcomes (``EnqueueRolloutsResponse.errors``). The checks every
request gets (:mod:`agl_core.store.request_checks`) run here per item; the items that pass go to
the backend in one request, and its answer is spread back over the original indices.
"""

from __future__ import annotations

import asyncio

from agl_core.errors import AglError, code_number
from agl_core.proto import store_pb2 as s
from agl_core.store.backend import StoreBackend
from agl_core.store.request_checks import check_request

_YIELD_EVERY = 1024


async def enqueue_items_alone(backend: StoreBackend, request: s.EnqueueRolloutsRequest) -> s.EnqueueRolloutsResponse:
    check_request(request, skip=frozenset({"rollouts"}))
    good: list[int] = []
    errors: list[tuple[int, int, str]] = []
    for i, spec in enumerate(request.rollouts):
        if i and i % _YIELD_EVERY == 0:
            await asyncio.sleep(0)  # a batch of 50,000 takes ~0.4 s to check: let other calls run meanwhile
        try:
            check_request(spec, f"rollouts[{i}]")
        except AglError as exc:
            errors.append((i, code_number(exc), exc.message))
            continue
        good.append(i)
    if len(good) == len(request.rollouts):
        return await backend.enqueue_rollouts(request)
    response = s.EnqueueRolloutsResponse()
    for _ in request.rollouts:
        response.rollouts.add()
    if good:
        inner = s.EnqueueRolloutsRequest()
        inner.rollouts.extend(request.rollouts[i] for i in good)
        stored = await backend.enqueue_rollouts(inner)
        for position, rollout in enumerate(stored.rollouts):
            response.rollouts[good[position]].CopyFrom(rollout)
        for error in stored.errors:
            original = good[error.index]
            message = error.message.replace(f"rollouts[{error.index}]", f"rollouts[{original}]", 1)
            errors.append((original, error.code, message))
    for index, code, message in sorted(errors):
        response.errors.add(index=index, code=code, message=message)
    return response
