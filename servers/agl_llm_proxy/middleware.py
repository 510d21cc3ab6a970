"""The LLM proxy's aiohttp middlewares, outermost first: per-call metrics, auth, and error pages
for what aiohttp itself refuses (unknown route, wrong method, body too large)."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from agl_llm_proxy.config import ProxyConfig
from agl_llm_proxy.errors import error_for_path
from agl_llm_proxy.metrics import ProxyMetrics, route_kind

# Where a handler notes the backend that served the call (for the metrics middleware). RequestKey
# is aiohttp >= 3.13; older versions take a plain string key.
BACKEND_KEY: Any = web.RequestKey("agl_backend", str) if hasattr(web, "RequestKey") else "agl_backend"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def metrics_middleware(metrics: ProxyMetrics) -> Middleware:
    """Times every call (not /health, /metrics) by route kind, status and the backend that served it."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in ("/health", "/metrics"):
            return await handler(request)
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            # Handlers note the backend that served the call on the request.
            backend = request.get(BACKEND_KEY)
            metrics.observe_call(backend, route_kind(request.path), status, time.perf_counter() - started)

    return middleware


def auth_middleware(config: ProxyConfig, counters: dict[str, int]) -> Middleware:
    """With ``config.token`` set, every route but /health needs it as a bearer token or x-api-key;
    refusals are counted in ``counters["unauthorized"]``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Checked before the body is read. /health stays open for probes, like agl-server's.
        if config.token is None or request.path == "/health":
            return await handler(request)
        expected = config.token.encode()
        bearer = request.headers.get("authorization", "")
        api_key = request.headers.get("x-api-key", "")  # the Anthropic SDK's way to send its key
        if hmac.compare_digest(bearer.encode(), b"Bearer " + expected) or hmac.compare_digest(
            api_key.encode(), expected
        ):
            return await handler(request)
        counters["unauthorized"] += 1
        message = (
            "missing authorization: send 'Authorization: Bearer <token>' or 'x-api-key: <token>' (the client's api_key)"
            if not bearer and not api_key
            else "the token is not valid for this LLM proxy"
        )
        response = error_for_path(request.path, 401, message, "authentication_error")
        response.headers["WWW-Authenticate"] = 'Bearer realm="agl-llm-proxy"'
        return response

    return middleware


def errors_middleware(config: ProxyConfig) -> Middleware:
    """What aiohttp refuses, answered in the route's error shape (OpenAI's, or Anthropic's on
    /v1/messages) with what to do instead."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return error_for_path(
                request.path,
                404,
                f"no route {request.method} {request.path}; calls go to "
                "/rollout/{rollout_id}/attempt/{attempt_id}/v1/chat/completions (or /completions, /messages)",
                "not_found_error",
            )
        except web.HTTPMethodNotAllowed as exc:
            return error_for_path(
                request.path,
                405,
                f"{request.method} is not allowed on {request.path} (use {', '.join(sorted(exc.allowed_methods))})",
            )
        except web.HTTPRequestEntityTooLarge:
            return error_for_path(request.path, 413, f"the request body is larger than {config.max_body_mb:g} MB")

    return middleware
