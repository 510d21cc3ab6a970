"""Assembling and running agl-server: store service, health, reflection, auth, TLS, shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agl_core.store.backend import StoreBackend
from agl_server.guard import RequestGuard
from agl_server.http.context import HttpContext
from agl_server.http.listener import HttpListener, server_ssl_context
from agl_server.ingest_budget import DEFAULT_BUDGET_BYTES
from agl_server.metrics import ServerMetrics
from agl_server.retention import RetentionPolicy, RetentionTask
from agl_server.runner_service import SERVICE_NAME as RUNNER_SERVICE_NAME
from agl_server.runner_service import RunnerServicer
from agl_server.servicer import SERVICE_NAME, StoreServicer

logger = logging.getLogger("agl_server")

DEFAULT_PORT = 4747


@dataclass
class ServerConfig:
    """Settings of one agl-server.

    :param max_message_bytes: the largest request accepted; larger ones get RESOURCE_EXHAUSTED.
    :param grace: seconds in-flight calls get to finish on shutdown.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    tls_cert: bytes | None = None
    tls_key: bytes | None = None
    max_message_bytes: int = 16 * 1024 * 1024
    grace: float = 5.0
    # Memory for span batches read and not yet written, across all IngestSpans streams.
    ingest_budget_bytes: int = DEFAULT_BUDGET_BYTES
    extra_services: Sequence[object] = field(default_factory=tuple)
    # The HTTP listener (metrics, OTLP/HTTP, dashboard): None keeps it off; 0 picks a free port.
    http_port: int | None = None
    # Deletes old finished rollouts in the background (retention.py); None keeps everything.
    retention: RetentionPolicy | None = None


class AglServer:
    """One agl-server over a backend: ``await start()``, then ``await stop()``."""

    def __init__(self, backend: StoreBackend, config: ServerConfig) -> None:
        self.backend = backend
        self.config = config
        http = config.http_port is not None
        self.http_context = HttpContext(store=backend, token=config.token, max_body_bytes=config.max_message_bytes)
        # Counting on the hot paths only when someone can read the counts.
        self.metrics = ServerMetrics(self.http_context.registry) if http else None
        self.servicer = StoreServicer(backend, config.ingest_budget_bytes, metrics=self.metrics)
        self.runner_servicer = RunnerServicer(backend, self.servicer.shutting_down)
        self.http: HttpListener | None = None
        self.http_port: int | None = None
        self.health = health.aio.HealthServicer()
        self.port: int | None = None
        self.server = grpc.aio.server(
            # Before anything else: the token, then decoding (see guard.py).
            interceptors=[RequestGuard(config.token)],
            options=[
                ("grpc.max_receive_message_length", config.max_message_bytes),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.so_reuseport", 0),
            ],
        )
        self._stopped = asyncio.Event()
        self._closed = asyncio.Event()
        self._stop_task: asyncio.Task[None] | None = None
        self.retention = RetentionTask(backend, config.retention) if config.retention else None

    async def start(self) -> int:
        """Bind, start serving and return the bound port (useful with port 0)."""
        await self.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.health.set(RUNNER_SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.servicer.register(self.server)
        names = [SERVICE_NAME, *self.runner_servicer.register(self.server)]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names += [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
        for extra in self.config.extra_services:
            register = extra.register
            names.extend(register(self.server) or ())
        reflection.enable_server_reflection(names, self.server)
        address = f"{self.config.host}:{self.config.port}"
        try:
            if self.config.tls_cert and self.config.tls_key:
                credentials = grpc.ssl_server_credentials([(self.config.tls_key, self.config.tls_cert)])
                self.port = self.server.add_secure_port(address, credentials)
            else:
                self.port = self.server.add_insecure_port(address)
        except RuntimeError:  # grpc reports a failed bind this way
            self.port = 0
        if not self.port:
            raise OSError(
                f"could not bind {address}: the port is in use or the address is not local; choose another "
                "with --port (0 picks a free one)"
            )
        if self.config.http_port is not None:
            await self._start_http()  # before anything runs: a port in use fails the start as cleanly as gRPC's
        await self.server.start()
        start = getattr(self.backend, "start", None)
        if start is not None:
            await start()
        self.runner_servicer.start()
        if self.retention is not None:
            self.retention.start()
        # Serving only once the store is open and the port is bound.
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(RUNNER_SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        self.http_context.serving = True
        return self.port

    async def _start_http(self) -> None:
        ctx = self.http_context
        ctx.runner = self.runner_servicer
        ctx.ingest_budget = self.servicer.ingest_budget
        ctx.span_outcomes.append(self.servicer.outcomes)
        for extra in self.config.extra_services:
            outcomes = getattr(extra, "outcomes", None)
            if isinstance(outcomes, dict) and hasattr(extra, "parse_request"):  # the OTLP receiver
                ctx.otlp = extra
                ctx.span_outcomes.extend(outcomes.values())
        if self.metrics is not None:
            for hook, fn in (
                ("add_commit_observer", self.metrics.observe_commit),
                ("add_listener", self.metrics.on_commit),
            ):
                register = getattr(self.backend, hook, None)
                if register is not None:  # the LMDB store has both; another backend may have neither
                    register(fn)
        ssl_context = (
            server_ssl_context(self.config.tls_cert, self.config.tls_key)
            if self.config.tls_cert and self.config.tls_key
            else None
        )
        assert self.config.http_port is not None
        self.http = HttpListener(ctx, self.config.host, self.config.http_port, ssl_context, grace=self.config.grace)
        self.http_port = await self.http.start()

    async def stop(self) -> None:
        """NOT_SERVING, end long calls, let the rest finish within the grace period, close the store."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        logger.info("agl-server shutting down", extra={"grace_s": self.config.grace})
        self.http_context.serving = False
        await self.health.enter_graceful_shutdown()
        self.servicer.shutting_down.set()
        try:
            if self.http is not None:
                await self.http.stop()
            if self.retention is not None:
                await self.retention.stop()
            await self.runner_servicer.close()
            await self.server.stop(self.config.grace)
            await self.backend.close()
        finally:
            self._closed.set()
        logger.info("agl-server stopped")

    async def wait_closed(self) -> None:
        """Return once :meth:`stop` has finished (the store closed, every write committed)."""
        await self._closed.wait()

    def install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        """SIGTERM/SIGINT stop the server gracefully; a second signal is not needed to finish."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda s=sig: self._on_signal(s))

    def _on_signal(self, sig: signal.Signals) -> None:
        logger.info("received %s", sig.name)
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self.stop())
