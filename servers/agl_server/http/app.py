"""The aiohttp application of the HTTP listener: token check, error bodies, route modules.

Every path but those in ``ctx.open_paths`` (``/healthz``) needs ``Authorization: Bearer <token>``
when the server has a token, ``/metrics`` included: Prometheus sends it with ``authorization:
{credentials: ...}`` (or ``bearer_token_file``) in its scrape config, and the metrics say how
busy the server is and how many rollouts it holds, which is not for everyone on the network.
The check runs in a middleware before the handler, so an unauthenticated request's body is never
read.

Errors are answered with a precise status (400 malformed body, 401 token, 404 unknown path, 405
method, 413 body too large, 415 content type) and a JSON body ``{"error": "...", "status": N}``,
unless the route writes its own (OTLP answers in its own encoding).
"""

from __future__ import annotations

import hmac
import importlib
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from agl_server.http.context import HttpContext

logger = logging.getLogger("agl_server.http")

# Modules with a ``register_routes(app: web.Application, ctx: HttpContext) -> None`` function, in
# the order they are registered. A module that is not installed is skipped with a warning.
ROUTE_MODULES: list[str] = [
    "agl_server.http.health",
    "agl_server.http.metrics",
    "agl_server.http.otlp",
    "agl_server.http.dashboard",
]

CTX_KEY = web.AppKey("agl_ctx", HttpContext)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON error body a person can act on."""
    return web.Response(
        status=status,
        text=json.dumps({"error": message, "status": status}),
        content_type="application/json",
        headers=headers,
    )


def token_refusal(ctx: HttpContext, request: web.Request) -> str | None:
    """None when the request may go on; else why it may not (the 401's message)."""
    if ctx.token is None or request.path in ctx.open_paths:
        return None
    given = request.headers.get("Authorization", "")
    if given and hmac.compare_digest(given.encode(), f"Bearer {ctx.token}".encode()):
        return None
    if any(check(request) for check in ctx.browser_auth):
        return None
    if not given:
        return "missing authorization: send the header 'Authorization: Bearer <token>' (the server's AGL_TOKEN)"
    return "the bearer token is not valid for this agl-server"


def _wants_page(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


def _auth_middleware(ctx: HttpContext) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = token_refusal(ctx, request)
        if refusal is not None and ctx.login_path and request.method == "GET" and _wants_page(request):
            raise web.HTTPFound(ctx.login_path)  # a person at a browser: ask for the token
        if refusal is not None:
            return error_response(401, refusal, {"WWW-Authenticate": 'Bearer realm="agl-server"'})
        return await handler(request)

    return check_token


@web.middleware
async def _error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own 4xx (404, 405, 413) become JSON bodies with a message that says what to do."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return error_response(
            405, f"{request.method} is not allowed on {request.path}; use {allowed}", {"Allow": allowed}
        )
    except web.HTTPNotFound:
        return error_response(404, f"no such path: {request.path}")
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(413, f"the request body is too large: {exc.text}")
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return error_response(exc.status, exc.text or exc.reason, dict(exc.headers))
        raise


def build_app(ctx: HttpContext) -> web.Application:
    """The listener's application: middlewares, then each module of :data:`ROUTE_MODULES`."""
    # The outer middleware sees the errors of the inner ones (a 401 is already a response).
    app = web.Application(client_max_size=ctx.max_body_bytes, middlewares=[_error_middleware, _auth_middleware(ctx)])
    app[CTX_KEY] = ctx
    for name in ROUTE_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            if exc.name != name:
                raise
            logger.warning("HTTP route module %s is not installed; its routes are not served", name)
            continue
        module.register_routes(app, ctx)
    return app
