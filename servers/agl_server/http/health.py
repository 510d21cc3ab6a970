"""``GET /healthz``: 200 while the server serves, 503 while it starts or stops; open without the
token, like gRPC health, so load balancers can probe it."""

from __future__ import annotations

from aiohttp import web

from agl_server.http.context import HttpContext


def register_routes(app: web.Application, ctx: HttpContext) -> None:
    async def healthz(request: web.Request) -> web.Response:
        if ctx.serving:
            return web.json_response({"status": "serving"})
        return web.json_response({"status": "not_serving"}, status=503)

    app.router.add_get("/healthz", healthz)
