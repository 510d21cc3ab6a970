"""Signing a browser in to the dashboard when agl-server has a token.

A browser cannot add ``Authorization: Bearer`` to a page load or an ``EventSource``, so
``/dashboard/login`` takes the token once in a form and sets it as a cookie (HttpOnly: scripts
cannot read it; SameSite=Strict: other sites' pages do not send it). The listener's token check
accepts the cookie only for reading (GET/HEAD of the dashboard's pages and ``/api/``): everything
that writes (OTLP/HTTP) or scrapes (``/metrics``) still needs the header.
"""

from __future__ import annotations

import hmac
import html

from aiohttp import web

from agl_server.http.dashboard.headers import PAGE_HEADERS

COOKIE = "agl_dashboard_token"
LOGIN_PATH = "/dashboard/login"
# What the cookie may open: the read-only dashboard and its API.
READ_PREFIXES = ("/dashboard", "/api/")

_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>agl dashboard: sign in</title><link rel="icon" href="data:,">
</head>
<body style="font:15px system-ui,sans-serif"><main style="max-width:460px;margin:60px auto">
<h2>agl dashboard</h2>
<p>This agl-server requires its token (the value of <code>AGL_TOKEN</code> it was started with).</p>
{error}
<form method="post" action="login">
<input type="password" name="token" autocomplete="current-password" style="width:100%" autofocus
 aria-label="token" data-testid="token">
<p><button type="submit">Sign in</button></p>
</form></main></body></html>
"""


def cookie_allows(request: web.Request, token: str) -> bool:
    """Whether the request reads the dashboard with a valid login cookie."""
    if request.method not in ("GET", "HEAD") or not request.path.startswith(READ_PREFIXES):
        return False
    given = request.cookies.get(COOKIE, "")
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def _form(error: str = "", status: int = 200) -> web.Response:
    shown = f'<p style="color:#c5221f" data-testid="login-error">{html.escape(error)}</p>' if error else ""
    return web.Response(
        text=_FORM.format(error=shown), status=status, content_type="text/html", headers=dict(PAGE_HEADERS)
    )


def login_routes(token: str | None) -> list[web.RouteDef]:
    async def show(request: web.Request) -> web.Response:
        return _form()

    async def sign_in(request: web.Request) -> web.StreamResponse:
        if token is None:
            raise web.HTTPFound("/dashboard/")
        given = str((await request.post()).get("token", ""))
        if not hmac.compare_digest(given.encode(), token.encode()):
            return _form("That is not the token of this agl-server.", status=401)
        response = web.HTTPFound("/dashboard/")
        response.set_cookie(
            COOKIE, token, httponly=True, samesite="Strict", secure=request.secure, path="/", max_age=7 * 86400
        )
        raise response

    return [web.get(LOGIN_PATH, show), web.post(LOGIN_PATH, sign_in)]
