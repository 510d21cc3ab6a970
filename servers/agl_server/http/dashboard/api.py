"""The dashboard's JSON API under ``/api/``: what the pages show, read from the store in-process.

Every handler goes through the store's async API: the LMDB backend answers bounded reads in short
read transactions and runs scans (filters the rollout index cannot answer) off the event loop, so
no handler holds up gRPC. Bad query parameters get 400 with a message naming the parameter and
what it accepts; unknown ids 404.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from agl_core.errors import AglError, NotFoundError
from agl_core.store.base import LightningStore
from agl_core.types.core import Rollout, RolloutMode, RolloutStatus, WorkerStatus
from agl_server.http.dashboard import traces, views
from agl_server.http.dashboard.rewards import RewardReader

# Spans the rollout page loads at most; a rollout with more says so and shows the first ones.
MAX_SPANS = 5000
# Finished rollouts the reward chart plots at most (the latest ones).
MAX_CHART_POINTS = 1000
MAX_PAGE = 1000
# Rollouts the reward chart reads per store query.
CHART_PAGE = 100

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def dumps(value: Any) -> str:
    """JSON for the browser: non-finite floats (a NaN reward) become null, not invalid JSON."""
    return json.dumps(_finite(value), ensure_ascii=False, default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def reply(data: Any, status: int = 200) -> web.Response:
    # no-store: the pages poll and follow live events; a cached answer would show stale rows.
    return web.Response(
        text=dumps(data), status=status, content_type="application/json", headers={"Cache-Control": "no-store"}
    )


def error(status: int, message: str) -> web.Response:
    return reply({"error": message}, status)


class BadParameter(ValueError):
    pass


def _int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(f"query parameter {name!r} must be a whole number from {lo} to {hi}, not {raw!r}") from None
    if not lo <= value <= hi:
        raise BadParameter(f"query parameter {name!r} must be from {lo} to {hi}, not {value}")
    return value


def _choices(request: web.Request, name: str, allowed: list[str]) -> list[str] | None:
    """A comma-separated list of values of ``allowed``; None when the parameter is absent or empty."""
    raw = request.query.get(name, "")
    values = [v.strip().lower() for v in raw.split(",") if v.strip()]
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise BadParameter(f"query parameter {name!r}: unknown value {unknown[0]!r}; use one of {', '.join(allowed)}")
    return values or None


def _choice(request: web.Request, name: str, allowed: list[str], default: str) -> str:
    values = _choices(request, name, allowed)
    if values and len(values) > 1:
        raise BadParameter(f"query parameter {name!r} takes one value, one of {', '.join(allowed)}")
    return values[0] if values else default


def _guarded(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except BadParameter as exc:
            return error(400, str(exc))
        except NotFoundError as exc:
            return error(404, exc.message)
        except AglError as exc:  # the store refused the query: the caller asked for something invalid
            return error(400, exc.message)

    return guarded


def _namespace(request: web.Request) -> str | None:
    """``?namespace=NAME`` scopes a query to one namespace (experiment); without it, all of them."""
    return request.query.get("namespace", "").strip() or None


class DashboardApi:
    """The ``/api/`` handlers over one store."""

    def __init__(self, store: LightningStore) -> None:
        self.store = store
        self.rewards = RewardReader(store)

    def scoped(self, request: web.Request) -> tuple[LightningStore, bool]:
        """The store view a query runs on, and whether it spans every namespace."""
        namespace = _namespace(request)
        return (self.store.with_namespace(namespace), False) if namespace else (self.store, True)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/rollouts", _guarded(self.rollouts)),
            web.get("/api/rollouts/{rollout_id}", _guarded(self.rollout)),
            web.get("/api/rewards", _guarded(self.reward_series)),
            web.get("/api/resources", _guarded(self.resources)),
            web.get("/api/workers", _guarded(self.workers)),
            web.get("/api/stats", _guarded(self.stats)),
        ]

    async def rollouts(self, request: web.Request) -> web.Response:
        """``?status=a,b&mode=train&q=<id part>&namespace=NAME&sort=start_time&order=desc&limit=50&offset=0``"""
        statuses = _choices(request, "status", [s.value for s in RolloutStatus])
        mode = _choice(request, "mode", [m.value for m in RolloutMode], "")
        store, all_namespaces = self.scoped(request)
        page = await store.query_rollouts(
            all_namespaces=all_namespaces,
            status_in=statuses,
            mode=mode or None,
            rollout_id_contains=request.query.get("q", "").strip() or None,
            sort_by=_choice(request, "sort", ["start_time", "end_time", "rollout_id", "status"], "start_time"),
            order=_choice(request, "order", ["asc", "desc"], "desc"),
            limit=_int(request, "limit", 50, 1, MAX_PAGE),
            offset=_int(request, "offset", 0, 0, 2**31),
        )
        rows = [views.rollout_row(r, await self.rewards.reward(r)) for r in page.items]
        return reply({"items": rows, "total": page.total, "limit": page.limit, "offset": page.offset})

    async def rollout(self, request: web.Request) -> web.Response:
        rollout_id = request.match_info["rollout_id"]
        rollout = await self.store.get_rollout(rollout_id)
        if rollout is None:
            return error(404, f"rollout {rollout_id!r} not found")
        attempts = await self.store.query_attempts(rollout_id, limit=MAX_PAGE)
        spans = await self.store.query_spans_page(rollout_id, limit=MAX_SPANS)
        resources = await self.store.get_resources(rollout.resources_id) if rollout.resources_id else None
        body = views.rollout_view(rollout)
        body["reward"] = await self.rewards.reward(rollout)
        body["resources_version"] = resources.version if resources else None
        body["attempts"] = [views.attempt_view(a) for a in attempts.items]
        body["span_total"] = spans.total
        # Building the tree and matching rewards of thousands of spans is CPU work: off the loop.
        body.update(await asyncio.get_running_loop().run_in_executor(None, traces.trace_view, spans.items))
        return reply(body)

    async def reward_series(self, request: web.Request) -> web.Response:
        """Reward over time of the latest finished rollouts, one series per resources set."""
        limit = _int(request, "limit", 500, 1, MAX_CHART_POINTS)
        # The latest started (the rollout index answers it without a scan, however many are stored),
        # plotted by when they finished; read a page at a time, since turning a thousand rollouts
        # into Python objects at once would hold up the event loop (and gRPC) for about 0.1 s.
        store, all_namespaces = self.scoped(request)
        finished: dict[str, Rollout] = {}
        for offset in range(0, limit, CHART_PAGE):
            page = await store.query_rollouts(
                all_namespaces=all_namespaces,
                status_in=[RolloutStatus.SUCCEEDED, RolloutStatus.FAILED],
                sort_by="start_time",
                order="desc",
                limit=min(CHART_PAGE, limit - offset),
                offset=offset,
            )
            finished.update((r.rollout_id, r) for r in page.items)  # a rollout seen twice counts once
            if offset + len(page.items) >= page.total:
                break
        series = await self.rewards.series(list(finished.values()))
        ids = list(dict.fromkeys(s["resources_id"] for s in series if s["resources_id"]))
        versions = {}
        if ids:
            found = await self.store.query_resources(resources_id_in=ids, limit=len(ids), all_namespaces=True)
            versions = {r.resources_id: r.version for r in found.items}
        for entry in series:
            entry["version"] = versions.get(entry["resources_id"])
        return reply({"series": series, "rollouts": len(finished)})

    async def resources(self, request: web.Request) -> web.Response:
        store, all_namespaces = self.scoped(request)
        page = await store.query_resources(
            all_namespaces=all_namespaces,
            sort_by="update_time",
            order=_choice(request, "order", ["asc", "desc"], "desc"),
            limit=_int(request, "limit", 100, 1, MAX_PAGE),
            offset=_int(request, "offset", 0, 0, 2**31),
        )
        # "Latest" is per namespace: the latest set of each namespace on this page.
        latest = {}
        for namespace in sorted({r.namespace for r in page.items}):
            found = await self.store.with_namespace(namespace).get_latest_resources()
            if found is not None:
                latest[namespace] = found.resources_id
        return reply({"items": [views.resources_view(r) for r in page.items], "total": page.total, "latest": latest})

    async def workers(self, request: web.Request) -> web.Response:
        store, all_namespaces = self.scoped(request)
        page = await store.query_workers(
            all_namespaces=all_namespaces,
            status_in=_choices(request, "status", [s.value for s in WorkerStatus]),
            sort_by="worker_id",
            limit=_int(request, "limit", 200, 1, MAX_PAGE),
            offset=_int(request, "offset", 0, 0, 2**31),
        )
        return reply({"items": [views.worker_view(w) for w in page.items], "total": page.total})

    async def stats(self, request: web.Request) -> web.Response:
        return reply(await self.store.stats())
