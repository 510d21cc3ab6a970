"""What the route modules of the HTTP listener share: the store, the token, the metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from agl_core.store.backend import StoreBackend

# The largest request body the listener reads (OTLP exports included); larger ones get 413.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass
class HttpContext:
    """Handed to every route module's ``register_routes(app, ctx)``.

    :param store: the server's store backend (the same object the gRPC servicers use; call it on
        the server's event loop, which is where aiohttp runs the handlers).
    :param token: the server's bearer token, or None when the server runs without one. The app's
        middleware checks it before any handler runs (see :mod:`agl_server.http.app`).
    :param registry: the Prometheus registry ``GET /metrics`` exposes; route modules may add
        collectors to it.
    :param metrics: the server's hot-path metrics (:class:`agl_server.metrics.ServerMetrics`), or None.
    :param otlp: the OTLP trace receiver (:class:`agl_plugins.otlp.receiver.OtlpTraceService`), or None
        when its plugin is disabled; ``POST /v1/traces`` hands requests to it.
    :param runner: the RunnerService servicer (open Work streams, connected workers), or None.
    :param span_outcomes: the :class:`agl_core.store.span_outcomes.SpanOutcomes` of each span entry
        point (spans accepted, duplicate, rejected by reason), read at scrape time.
    :param ingest_budget: the IngestSpans memory budget (:class:`agl_server.ingest_budget.IngestBudget`).
    :param max_body_bytes: the largest request body accepted.
    :param open_paths: paths served without the token (health checks); route modules may add to it.
    :param browser_auth: further ways a request may prove it holds the token, for browsers that cannot
        send the header (the dashboard's login cookie); route modules append checks to it.
    :param login_path: where a browser's page load without the token is sent instead of a 401.
    """

    store: StoreBackend
    token: str | None = None
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))
    metrics: Any = None
    otlp: Any = None
    runner: Any = None
    span_outcomes: list[Any] = field(default_factory=list)
    ingest_budget: Any = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    open_paths: set[str] = field(default_factory=lambda: {"/healthz"})
    browser_auth: list[Callable[[web.Request], bool]] = field(default_factory=list)
    login_path: str | None = None
    # True once the store is open and the gRPC port serves, False again when shutdown begins.
    serving: bool = False
