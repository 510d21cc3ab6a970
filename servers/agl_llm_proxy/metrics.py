"""The proxy's Prometheus metrics (``GET /metrics``): calls, latency, tokens and errors per backend.

Each proxy has its own registry (not the process-wide default), so that several proxies in one
process (tests, an embedded proxy next to a trainer) do not count into each other.

Labels: ``backend`` is the backend's base URL (``none`` when no backend took the call), ``route``
the kind of call (``chat``, ``completions``, ``messages``, ``models``, ``other``), ``status`` the
HTTP status the caller received.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

NO_BACKEND = "none"
# LLM calls take from milliseconds (a cached short answer) to minutes (long generations).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def route_kind(path: str) -> str:
    """The ``route`` label of a request path."""
    for suffix, kind in (
        ("/v1/chat/completions", "chat"),
        ("/v1/completions", "completions"),
        ("/v1/messages", "messages"),
        ("/v1/models", "models"),
    ):
        if path.rstrip("/").endswith(suffix):
            return kind
    return "other"


class ProxyMetrics:
    """The counters and histograms of one proxy."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "agl_llm_proxy_requests",
            "Calls answered by the proxy, by backend, route kind and HTTP status",
            ["backend", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "agl_llm_proxy_request_duration_seconds",
            "Time from a call's arrival to the end of its answer (a stream's last byte)",
            ["backend", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "agl_llm_proxy_tokens",
            "Tokens of the calls (the backends' usage), by backend and type (prompt, completion)",
            ["backend", "type"],
            registry=self.registry,
        )
        self.backend_errors = Counter(
            "agl_llm_proxy_backend_errors",
            "Backend failures: connect (refused or dropped), timeout, http_status (an error answer), "
            "broken_stream (cut off mid-answer)",
            ["backend", "reason"],
            registry=self.registry,
        )
        self.spans = Counter(
            "agl_llm_proxy_spans",
            "Spans of recorded calls by outcome: recorded (acknowledged by the store), rejected, failed",
            ["outcome"],
            registry=self.registry,
        )

    def observe_call(self, backend: str | None, route: str, status: int, seconds: float) -> None:
        backend = backend or NO_BACKEND
        self.requests.labels(backend, route, str(status)).inc()
        self.latency.labels(backend, route).observe(seconds)

    def observe_usage(self, backend: str | None, usage: Any) -> None:
        """Count the tokens of an OpenAI ``usage`` object (other shapes are ignored)."""
        if not isinstance(usage, Mapping):
            return
        backend = backend or NO_BACKEND
        for key, kind in (("prompt_tokens", "prompt"), ("completion_tokens", "completion")):
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                self.tokens.labels(backend, kind).inc(value)

    def backend_error(self, backend: str, reason: str) -> None:
        self.backend_errors.labels(backend, reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["CONTENT_TYPE", "NO_BACKEND", "ProxyMetrics", "route_kind"]
