"""agl-server's HTTP listener (``--http-port``): Prometheus metrics, OTLP/HTTP traces, the dashboard.

It runs on the server's own event loop next to the gRPC server, over the same store object, with
the same bearer token. :func:`agl_server.http.app.build_app` assembles it from route modules, each
with a ``register_routes(app, ctx)`` function (see :data:`agl_server.http.app.ROUTE_MODULES`).
"""

from agl_server.http.app import ROUTE_MODULES, build_app
from agl_server.http.context import HttpContext

__all__ = ["ROUTE_MODULES", "HttpContext", "build_app"]
