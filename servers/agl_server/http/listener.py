"""Running the HTTP listener on the server's event loop: bind, serve, stop."""

from __future__ import annotations

import os
import ssl
import tempfile

from aiohttp import web

from agl_server.http.app import build_app
from agl_server.http.context import HttpContext


def server_ssl_context(cert: bytes, key: bytes) -> ssl.SSLContext:
    """An HTTPS context from the PEM bytes the gRPC port uses (ssl loads only from files: a private
    temp dir, removed at once)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory(prefix="agl-tls-") as scratch:
        cert_path, key_path = os.path.join(scratch, "cert.pem"), os.path.join(scratch, "key.pem")
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        context.load_cert_chain(cert_path, key_path)
    return context


class HttpListener:
    """The listener of one agl-server: ``port = await start()``, then ``await stop()``."""

    def __init__(
        self,
        ctx: HttpContext,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        *,
        grace: float = 5.0,
    ) -> None:
        self.ctx = ctx
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.app = build_app(ctx)
        # No access log: a scrape every few seconds would drown the server's own log.
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=grace)

    async def start(self) -> int:
        """Bind and serve; returns the bound port (useful with port 0)."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context, reuse_port=False)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise OSError(
                f"could not bind the HTTP listener to {self.host}:{self.port} ({exc.strerror}); choose another "
                "with --http-port (0 picks a free one)"
            ) from None
        server = site._server  # aiohttp keeps the asyncio server here; its sockets say the bound port
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        await self._runner.cleanup()
