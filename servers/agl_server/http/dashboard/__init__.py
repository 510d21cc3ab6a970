"""The web dashboard of agl-server, on its HTTP listener (``--http-port``).

``/dashboard/`` is a single page (rollouts, a rollout's attempts, span timeline and LLM calls, reward
over time per resources set, workers, resources) that reads the JSON API under ``/api/`` and follows
``/api/events`` for live updates. Its assets (HTML, JavaScript, CSS and the vendored uPlot chart
library with its licence) ship in this package under ``static/``: nothing is fetched from elsewhere
at run time and nothing is built. When the server has a token, a browser signs in once at
``/dashboard/login`` (see :mod:`agl_server.http.dashboard.login`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agl_core.store.base import LightningStore
from agl_server.http.dashboard.api import DashboardApi
from agl_server.http.dashboard.headers import PAGE_HEADERS
from agl_server.http.dashboard.live import STREAMS_KEY, LiveEvents, close_streams
from agl_server.http.dashboard.login import LOGIN_PATH, cookie_allows, login_routes

if TYPE_CHECKING:
    from agl_server.http.context import HttpContext

STATIC = Path(__file__).parent / "static"
PREFIX = "/dashboard"


def store_api(store: Any) -> LightningStore:
    """The Python store API over what the server holds (a :class:`LightningStore` or a backend)."""
    return store if isinstance(store, LightningStore) else LightningStore(store)


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)


async def _to_index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(PREFIX + "/")


def register_routes(app: web.Application, ctx: HttpContext) -> None:
    """Add the dashboard's pages, static assets, JSON API and event stream to ``app``."""
    store = store_api(ctx.store)
    app[STREAMS_KEY] = set()
    app.router.add_routes(DashboardApi(store).routes())
    app.router.add_get("/api/events", LiveEvents(store).handle)
    app.router.add_get(PREFIX + "/", _index)
    app.router.add_get(PREFIX, _to_index)
    app.router.add_get("/", _to_index)
    app.router.add_static(PREFIX + "/static/", STATIC, append_version=False)
    app.on_shutdown.append(close_streams)
    app.router.add_routes(login_routes(ctx.token))
    ctx.open_paths.add(LOGIN_PATH)
    token = ctx.token
    if token is not None:
        ctx.browser_auth.append(lambda request: cookie_allows(request, token))
        ctx.login_path = LOGIN_PATH
