"""The LLM proxy: an OpenAI- and Anthropic-compatible HTTP server in front of OpenAI-compatible
backends (vLLM), or backends that serve the Anthropic Messages API themselves.

Routes (``rid``/``aid``: the rollout and attempt a call belongs to; ``ProxyLLM`` builds the URL)::

    POST /rollout/{rid}/attempt/{aid}/v1/chat/completions   recorded as a span of that attempt
    POST /rollout/{rid}/attempt/{aid}/v1/completions        recorded as a span of that attempt
    POST /rollout/{rid}/attempt/{aid}/v1/messages           Anthropic Messages API, recorded
    GET  /rollout/{rid}/attempt/{aid}/v1/models             passed through
    POST /v1/chat/completions, /v1/completions, /v1/messages  served, not recorded
    GET  /v1/models                                         passed through
    GET  /health                                            backends and counters (JSON)
    GET  /metrics                                           Prometheus metrics (agl_llm_proxy_*)

Per call the proxy asks the backend for token ids (vLLM ``return_token_ids``), forwards the
answer (a stream chunk by chunk), rebuilds a streamed response from its chunks, token ids and
logprobs included, and writes one span into the store. The span is written, and acknowledged by
the store, **before** the caller sees the end of the response (the last byte of a plain response,
the ``[DONE]`` or ``message_stop`` of a stream): once an agent has its answer, the call is in the
store, so a rollout that finishes right after its last call never misses it.

The OpenAI routes are in :mod:`agl_llm_proxy.openai_api`, the Messages API in
:mod:`agl_llm_proxy.messages`, auth, error pages and per-call metrics in
:mod:`agl_llm_proxy.middleware`; this module holds what the routes share: choosing a backend and
failing over, and recording.

Errors: an unknown route gets 404, a malformed body 400, a call no backend could take 502 (504
when the backend timed out), as OpenAI-style JSON errors (Anthropic's error shape on the
``/v1/messages`` routes); an error a backend answers with is passed on. Calls of an attempt that
fail are recorded as spans with status ERROR and ``agl.llm.error``.

Auth: with a proxy token set, every route but ``/health`` (``/metrics`` included: scrape it with
the token as a bearer credential) needs ``Authorization: Bearer <token>`` or, as the Anthropic SDK
sends it, ``x-api-key: <token>``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from agl_core.proto.trace_pb2 import Span
from agl_core.store import LightningStore
from agl_core.types import ProxyLLM
from agl_llm_proxy import messages, openai_api
from agl_llm_proxy.backends import Backend, BackendPool, NoBackendError
from agl_llm_proxy.config import ProxyConfig
from agl_llm_proxy.errors import error_for_path
from agl_llm_proxy.metrics import CONTENT_TYPE, ProxyMetrics
from agl_llm_proxy.middleware import BACKEND_KEY, auth_middleware, errors_middleware, metrics_middleware
from agl_llm_proxy.recording import CallRecord

logger = logging.getLogger("agl_llm_proxy")

# Request headers passed on to the backend (the body is re-serialised, so its length is new).
_FORWARD_HEADERS = (
    "authorization",
    "traceparent",
    "tracestate",
    "openai-organization",
    "openai-project",
    "x-api-key",
    "anthropic-version",
    "anthropic-beta",
)
# What a route's error answers look like: (status, message, OpenAI error type) -> response.
ErrorFn = Callable[[int, str, str], web.Response]


class LLMProxy:
    """The proxy (an aiohttp application); ``await start()`` serves it on the running event loop.

    :param backends: base URLs of OpenAI-compatible servers (``http://host:port`` or ``.../v1``).
    :param store: where the spans go (a ``GrpcStore`` streams them to agl-server); None records nothing.
    :param host: interface to bind.
    :param port: port to bind (0: a free one; see :attr:`port` after :meth:`start`).
    :param config: further settings.
    """

    def __init__(
        self,
        backends: Iterable[str] = (),
        *,
        store: LightningStore | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        config: ProxyConfig | None = None,
    ) -> None:
        self.config = config or ProxyConfig()
        self.pool = BackendPool(backends, retry_after=self.config.retry_after)
        self.store = store
        self.host = host
        self.port = port
        self.metrics = ProxyMetrics()
        self.counters = {
            "calls": 0,
            "recorded": 0,
            "record_failed": 0,
            "rejected": 0,
            "backend_errors": 0,
            "unauthorized": 0,
        }
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.app = self._build_app()

    # --- lifecycle ---------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(
            client_max_size=int(self.config.max_body_mb * 1024 * 1024),
            middlewares=[
                metrics_middleware(self.metrics),
                auth_middleware(self.config, self.counters),
                errors_middleware(self.config),
            ],
        )
        prefix = "/rollout/{rollout_id}/attempt/{attempt_id}"
        for base in (prefix, ""):
            app.router.add_post(base + "/v1/chat/completions", self._chat)
            app.router.add_post(base + "/v1/completions", self._text)
            app.router.add_post(base + "/v1/messages", self._messages)
            app.router.add_get(base + "/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self) -> LLMProxy:
        """Bind and serve; returns once the port accepts connections."""
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.config.connect_timeout, sock_read=self.config.read_timeout
        )
        # No connection limit: the backends (vLLM) schedule many concurrent requests themselves.
        self._session = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0))
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl_context())
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        logger.info("LLM proxy on %s, backends: %s", self.url, ", ".join(b.url for b in self.pool.backends) or "none")
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> LLMProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """``http://host:port`` of the proxy."""
        scheme = "https" if self.config.tls_cert else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def _ssl_context(self) -> ssl.SSLContext | None:
        if bool(self.config.tls_cert) != bool(self.config.tls_key):
            raise ValueError("the proxy's TLS needs both tls_cert and tls_key")
        if not self.config.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        return context

    def update_backends(self, urls: Iterable[str]) -> None:
        """Serve from these backends from now on (calls in flight finish where they are)."""
        self.pool.set_urls(urls)

    def as_resource(self, model: str, sampling_parameters: Mapping[str, Any] | None = None) -> ProxyLLM:
        """A ``ProxyLLM`` resource for runners: each attempt's calls go to its own route."""
        return ProxyLLM(
            endpoint=f"{self.url}/v1",
            model=model,
            api_key=self.config.token,  # the agent's OpenAI client sends it as its bearer token
            sampling_parameters=dict(sampling_parameters or {}),
        )

    # --- handlers ----------------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"backends": self.pool.status(), "counters": self.counters})

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await openai_api.complete(self, request, "chat/completions")

    async def _text(self, request: web.Request) -> web.StreamResponse:
        return await openai_api.complete(self, request, "completions")

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await messages.handle(self, request)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        exclude: set[str] = set()
        while True:
            try:
                backend = self.pool.choose(None, exclude)
            except NoBackendError as exc:
                return error_for_path(request.path, 502, str(exc), "bad_gateway")
            exclude.add(backend.url)
            request[BACKEND_KEY] = backend.url
            try:
                async with self.http.get(backend.url + "/v1/models", headers=self.headers(request)) as resp:
                    body = await resp.read()
                    return web.Response(body=body, status=resp.status, content_type=resp.content_type)
            except aiohttp.ClientConnectionError as exc:
                self._backend_down(backend, exc)

    # --- what the routes share ---------------------------------------------------------------------

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the proxy is not started")
        return self._session

    def headers(self, request: web.Request, *, native_messages: bool = False) -> dict[str, str]:
        """The caller's headers to pass on to a backend (its credentials only when the proxy has no
        token of its own)."""
        headers = {k: v for k in _FORWARD_HEADERS if (v := request.headers.get(k)) is not None}
        if self.config.token is not None:  # the proxy's own token: the backends must not see it
            headers.pop("authorization", None)
            headers.pop("x-api-key", None)
        if not native_messages:
            api_key = headers.pop("x-api-key", None)
            if api_key and "authorization" not in headers:  # an Anthropic client's key, OpenAI's way
                headers["authorization"] = f"Bearer {api_key}"
            headers.pop("anthropic-version", None)
            headers.pop("anthropic-beta", None)
        if self.config.backend_api_key:
            headers["authorization"] = f"Bearer {self.config.backend_api_key}"
            if native_messages:
                headers["x-api-key"] = self.config.backend_api_key
        return headers

    def new_call(self, request: web.Request, operation: str, *, api: str = "openai") -> CallRecord:
        self.counters["calls"] += 1
        return CallRecord(
            request.match_info.get("rollout_id"),
            request.match_info.get("attempt_id"),
            operation,
            None,
            traceparent=request.headers.get("traceparent"),
            system=self.config.system,
            api=api,
        )

    def _backend_down(self, backend: Backend, exc: BaseException) -> None:
        self.pool.mark_down(backend, f"{type(exc).__name__}: {exc}")
        self.metrics.backend_error(backend.url, "connect")
        logger.warning("backend %s failed (%s: %s); trying another", backend.url, type(exc).__name__, exc)

    async def forward(
        self,
        request: web.Request,
        call: CallRecord,
        path: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        error: ErrorFn,
    ) -> tuple[Backend, aiohttp.ClientResponse] | web.Response:
        """Send ``body`` to ``/v1/{path}`` of a backend, failing over to the next while none has
        answered; the backend's response (the caller must :meth:`release` it), or the error answer
        for the caller when no backend could take the call."""
        exclude: set[str] = set()
        while True:
            try:
                backend = self.pool.choose(call.rollout_id if call.recorded else None, exclude)
            except NoBackendError as exc:
                await self.finish(call, status_code=502, error=str(exc))
                return error(502, str(exc), "bad_gateway")
            exclude.add(backend.url)
            call.backend = backend.url
            request[BACKEND_KEY] = backend.url
            backend.in_flight += 1
            try:
                response = await self.http.post(f"{backend.url}/v1/{path}", json=body, headers=headers)
            except aiohttp.ServerTimeoutError as exc:
                backend.in_flight -= 1
                self.metrics.backend_error(backend.url, "timeout")
                message = f"backend {backend.url} did not answer within {self.config.read_timeout}s: {exc}"
                await self.finish(call, status_code=504, error=message)
                return error(504, message, "gateway_timeout")
            except aiohttp.ClientConnectionError as exc:
                # Nothing reached the caller yet: try the next backend.
                backend.in_flight -= 1
                self._backend_down(backend, exc)
                continue
            self.pool.mark_up(backend)
            backend.served += 1
            if response.status >= 400:
                self.counters["backend_errors"] += 1
                self.metrics.backend_error(backend.url, "http_status")
            return backend, response

    @staticmethod
    def release(backend: Backend, response: aiohttp.ClientResponse) -> None:
        backend.in_flight -= 1
        response.release()

    def broken(self, call: CallRecord) -> None:
        """Count a backend that broke off its answer."""
        if call.backend:
            self.metrics.backend_error(call.backend, "broken_stream")

    # --- recording ---------------------------------------------------------------------------------

    async def finish(
        self,
        call: CallRecord,
        *,
        response: Mapping[str, Any] | None = None,
        status_code: int | None = None,
        error: str | None = None,
    ) -> None:
        """The call is over: count its tokens and, if it belongs to an attempt, record its span
        (acknowledged by the store before this returns)."""
        if response is not None:
            self.metrics.observe_usage(call.backend, response.get("usage"))
        if not call.recorded or self.store is None:
            return
        span = call.to_span(response=response, status_code=status_code, error=error)
        await self._write(span)

    async def _write(self, span: Span) -> None:
        assert self.store is not None
        try:
            result = await asyncio.wait_for(self.store.add_spans([span]), self.config.record_timeout)
        except Exception as exc:  # the caller's answer must not fail because the store is away
            self.counters["record_failed"] += 1
            self.metrics.spans.labels("failed").inc()
            logger.error(
                "could not record the LLM call of rollout %s attempt %s: %s: %s",
                span.rollout_id,
                span.attempt_id,
                type(exc).__name__,
                exc,
            )
            return
        if result.rejected:
            self.counters["rejected"] += 1
            self.metrics.spans.labels("rejected").inc()
            logger.warning(
                "the store rejected the span of an LLM call of rollout %s attempt %s: %s",
                span.rollout_id,
                span.attempt_id,
                result.rejected[0][1],
            )
        else:
            self.counters["recorded"] += 1
            self.metrics.spans.labels("recorded").inc()


__all__ = ["Backend", "LLMProxy", "ProxyConfig"]
