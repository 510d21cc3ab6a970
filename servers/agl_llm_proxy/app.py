"""The LLM proxy: an OpenAI-compatible HTTP server in front of OpenAI-compatible backends (vLLM).

Routes (``rid``/``aid``: the rollout and attempt a call belongs to; ``ProxyLLM`` builds the URL)::

    POST /rollout/{rid}/attempt/{aid}/v1/chat/completions   recorded as a span of that attempt
    POST /rollout/{rid}/attempt/{aid}/v1/completions        recorded as a span of that attempt
    GET  /rollout/{rid}/attempt/{aid}/v1/models             passed through
    POST /v1/chat/completions, /v1/completions              passed through, not recorded
    GET  /v1/models                                         passed through
    GET  /health                                            backends and counters (JSON)

Per call the proxy asks the backend for token ids (vLLM ``return_token_ids``), forwards the
answer unchanged (a stream chunk by chunk), rebuilds a streamed response from its chunks, token
ids included, and writes one span into the store. The span is written, and acknowledged by the
store, **before** the caller sees the end of the response (the last byte of a plain response, the
``[DONE]`` of a stream): once an agent has its answer, the call is in the store, so a rollout
that finishes right after its last call never misses it.

Errors: an unknown route gets 404, a body that is not a JSON object (or lacks ``messages`` /
``prompt``) 400, a call no backend could take 502 (504 when the backend timed out), all as
OpenAI-style JSON errors; an error a backend answers with is passed on as it is. Calls of an
attempt that fail are recorded as spans with status ERROR and ``agl.llm.error``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from agl_core import semconv
from agl_core.instrumentation.llm_record import StreamAccumulator
from agl_core.proto.trace_pb2 import Span
from agl_core.store import LightningStore
from agl_core.types import ProxyLLM
from agl_llm_proxy.backends import Backend, BackendPool, NoBackendError
from agl_llm_proxy.recording import CallRecord
from agl_llm_proxy.sse import SSEDecoder

logger = logging.getLogger("agl_llm_proxy")

# Request headers passed on to the backend (the body is re-serialised, so its length is new).
_FORWARD_HEADERS = ("authorization", "traceparent", "tracestate", "openai-organization", "openai-project")
_OPERATIONS = {
    "chat/completions": semconv.GEN_AI_OPERATION_CHAT,
    "completions": semconv.GEN_AI_OPERATION_TEXT_COMPLETION,
}


@dataclass(kw_only=True)
class ProxyConfig:
    """Settings of :class:`LLMProxy`.

    :param request_token_ids: add ``return_token_ids: true`` to every request (vLLM); turn off for
        backends that reject unknown parameters.
    :param retry_after: seconds a backend that failed to connect is left out.
    :param connect_timeout: seconds to open a connection to a backend.
    :param read_timeout: seconds a backend may stay silent (before its first byte, or between two
        stream chunks); None waits as long as it takes.
    :param record_timeout: seconds to wait for the store to acknowledge a span before answering
        without it (the span is then logged as lost and counted in ``/health``).
    :param backend_api_key: sent to the backends as a bearer token instead of the caller's.
    :param token: callers must send ``Authorization: Bearer <token>`` (all routes but ``/health``);
        others get 401. The caller's token is then never passed on to the backends.
    :param tls_cert: PEM certificate chain file; with ``tls_key``, the proxy serves HTTPS.
    :param tls_key: PEM private key file.
    :param system: the ``gen_ai.system`` of the spans.
    :param max_body_mb: largest request body accepted.
    """

    request_token_ids: bool = True
    retry_after: float = 10.0
    connect_timeout: float = 10.0
    read_timeout: float | None = 600.0
    record_timeout: float = 30.0
    backend_api_key: str | None = None
    token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    system: str = "openai"
    max_body_mb: float = 64.0


class _BadRequest(Exception):
    pass


class _CallerGone(Exception):
    """The caller closed its connection while a stream was being passed on."""


def _error_body(status: int, message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": status}}


def _json_error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    return web.json_response(_error_body(status, message, kind), status=status)


def _backend_error_message(status: int, body: bytes) -> str:
    try:
        data = json.loads(body)
        message = data.get("error", {}).get("message") if isinstance(data.get("error"), dict) else data.get("message")
    except (json.JSONDecodeError, AttributeError):
        message = None
    text = message if isinstance(message, str) else body[:500].decode("utf-8", "replace")
    return f"backend answered HTTP {status}: {text}"


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
            middlewares=[self._auth_middleware, self._errors_middleware],
        )
        prefix = "/rollout/{rollout_id}/attempt/{attempt_id}"
        for base in (prefix, ""):
            app.router.add_post(base + "/v1/chat/completions", self._chat)
            app.router.add_post(base + "/v1/completions", self._text)
            app.router.add_get(base + "/v1/models", self._models)
        app.router.add_get("/health", self._health)
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

    @web.middleware
    async def _auth_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # Checked before the body is read. /health stays open for probes, like agl-server's.
        if self.config.token is None or request.path == "/health":
            return await handler(request)
        given = request.headers.get("authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {self.config.token}".encode()):
            return await handler(request)
        self.counters["unauthorized"] += 1
        message = (
            "missing authorization: send 'Authorization: Bearer <token>' (the OpenAI client's api_key)"
            if not given
            else "the bearer token is not valid for this LLM proxy"
        )
        response = _json_error(401, message, "authentication_error")
        response.headers["WWW-Authenticate"] = 'Bearer realm="agl-llm-proxy"'
        return response

    @web.middleware
    async def _errors_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _json_error(
                404,
                f"no route {request.method} {request.path}; calls go to "
                "/rollout/{rollout_id}/attempt/{attempt_id}/v1/chat/completions (or /completions)",
                "not_found_error",
            )
        except web.HTTPMethodNotAllowed as exc:
            return _json_error(
                405, f"{request.method} is not allowed on {request.path} (use {', '.join(sorted(exc.allowed_methods))})"
            )
        except web.HTTPRequestEntityTooLarge:
            return _json_error(413, f"the request body is larger than {self.config.max_body_mb:g} MB")

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"backends": self.pool.status(), "counters": self.counters})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "chat/completions")

    async def _text(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "completions")

    async def _models(self, request: web.Request) -> web.StreamResponse:
        exclude: set[str] = set()
        while True:
            try:
                backend = self.pool.choose(None, exclude)
            except NoBackendError as exc:
                return _json_error(502, str(exc), "bad_gateway")
            exclude.add(backend.url)
            try:
                async with self._http.get(backend.url + "/v1/models", headers=self._headers(request)) as resp:
                    body = await resp.read()
                    return web.Response(body=body, status=resp.status, content_type=resp.content_type)
            except aiohttp.ClientConnectionError as exc:
                self.pool.mark_down(backend, f"{type(exc).__name__}: {exc}")

    @property
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the proxy is not started")
        return self._session

    def _headers(self, request: web.Request) -> dict[str, str]:
        headers = {k: v for k in _FORWARD_HEADERS if (v := request.headers.get(k)) is not None}
        if self.config.token is not None:
            headers.pop("authorization", None)  # the proxy's own token: the backends must not see it
        if self.config.backend_api_key:
            headers["authorization"] = f"Bearer {self.config.backend_api_key}"
        return headers

    @staticmethod
    def _parse_body(raw: bytes, path: str) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _BadRequest(f"the request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _BadRequest(f"the request body must be a JSON object, not {type(body).__name__}")
        if path == "chat/completions" and not isinstance(body.get("messages"), list):
            raise _BadRequest("'messages' is required and must be a list of messages")
        if path == "completions" and "prompt" not in body:
            raise _BadRequest("'prompt' is required")
        return body

    async def _complete(self, request: web.Request, path: str) -> web.StreamResponse:
        self.counters["calls"] += 1
        rollout_id = request.match_info.get("rollout_id")
        attempt_id = request.match_info.get("attempt_id")
        raw = await request.read()
        record: CallRecord | None = None
        if rollout_id and attempt_id:
            record = CallRecord(
                rollout_id,
                attempt_id,
                _OPERATIONS[path],
                None,
                traceparent=request.headers.get("traceparent"),
                system=self.config.system,
            )
        try:
            body = self._parse_body(raw, path)
        except _BadRequest as exc:
            await self._record(record, status_code=400, error=str(exc))
            return _json_error(400, str(exc))
        stream = bool(body.get("stream"))
        added_usage = False
        if self.config.request_token_ids:
            body.setdefault("return_token_ids", True)
        if stream:  # ask for usage so the span has it; the extra chunk is not passed on
            options = dict(body.get("stream_options") or {})
            if not options.get("include_usage"):
                options["include_usage"] = True
                added_usage = True
            body["stream_options"] = options
        if record is not None:
            record.request = body
        headers = self._headers(request)
        exclude: set[str] = set()
        while True:
            try:
                backend = self.pool.choose(rollout_id, exclude)
            except NoBackendError as exc:
                await self._record(record, status_code=502, error=str(exc))
                return _json_error(502, str(exc), "bad_gateway")
            exclude.add(backend.url)
            if record is not None:
                record.backend = backend.url
            backend.in_flight += 1
            try:
                response = await self._http.post(f"{backend.url}/v1/{path}", json=body, headers=headers)
            except aiohttp.ServerTimeoutError as exc:
                backend.in_flight -= 1
                message = f"backend {backend.url} did not answer within {self.config.read_timeout}s: {exc}"
                await self._record(record, status_code=504, error=message)
                return _json_error(504, message, "gateway_timeout")
            except aiohttp.ClientConnectionError as exc:
                # Nothing reached the caller yet: try the next backend.
                backend.in_flight -= 1
                self.pool.mark_down(backend, f"{type(exc).__name__}: {exc}")
                logger.warning("backend %s failed (%s: %s); trying another", backend.url, type(exc).__name__, exc)
                continue
            try:
                self.pool.mark_up(backend)
                backend.served += 1
                if response.status >= 400:
                    return await self._pass_error(record, response)
                if stream and response.content_type == "text/event-stream":
                    return await self._stream(request, record, response, path, added_usage)
                return await self._plain(record, response)
            finally:
                backend.in_flight -= 1
                response.release()

    async def _pass_error(self, record: CallRecord | None, response: aiohttp.ClientResponse) -> web.Response:
        self.counters["backend_errors"] += 1
        body = await response.read()
        await self._record(record, status_code=response.status, error=_backend_error_message(response.status, body))
        return web.Response(body=body, status=response.status, content_type=response.content_type)

    async def _plain(self, record: CallRecord | None, response: aiohttp.ClientResponse) -> web.Response:
        try:
            body = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            message = f"the backend broke off its answer: {type(exc).__name__}: {exc}"
            await self._record(record, status_code=502, error=message)
            return _json_error(502, message, "bad_gateway")
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if isinstance(data, dict):
            await self._record(record, response=data, status_code=response.status)
        else:
            await self._record(record, status_code=response.status, error="the backend's answer is not a JSON object")
        return web.Response(body=body, status=response.status, content_type=response.content_type or "application/json")

    async def _stream(
        self,
        request: web.Request,
        record: CallRecord | None,
        response: aiohttp.ClientResponse,
        path: str,
        added_usage: bool,
    ) -> web.StreamResponse:
        out = web.StreamResponse(status=response.status, headers={"Cache-Control": "no-cache"})
        out.content_type = "text/event-stream"
        await out.prepare(request)
        accumulator = StreamAccumulator(_OPERATIONS[path])
        decoder = SSEDecoder()
        done = False
        error: str | None = None

        async def send(data: bytes) -> None:
            try:
                await out.write(data)
            except (ConnectionResetError, aiohttp.ClientConnectionResetError) as exc:
                raise _CallerGone(str(exc) or type(exc).__name__) from exc

        try:
            async for chunk in response.content.iter_any():
                for event in decoder.feed(chunk):
                    if event.done:
                        done = True
                        continue
                    data = event.json()
                    if isinstance(data, dict):
                        if isinstance(data.get("error"), dict):
                            error = _backend_error_message(response.status, event.data.encode())  # type: ignore[union-attr]
                        accumulator.add(data)
                        if added_usage and not data.get("choices") and data.get("usage") is not None:
                            continue
                    await send(event.encode())
            for event in decoder.close():
                if event.done:
                    done = True
                else:
                    accumulator.add(event.json() or {})
                    await send(event.encode())
        except _CallerGone as exc:
            error = f"the caller went away mid-stream: {exc}"
            await self._record(record, response=accumulator.response(), status_code=response.status, error=error)
            return out
        except (TimeoutError, aiohttp.ClientError) as exc:
            error = f"the backend broke off its stream: {type(exc).__name__}: {exc}"
        if error is None and not done:
            error = "the backend's stream ended without [DONE]"
        await self._record(record, response=accumulator.response(), status_code=response.status, error=error)
        try:
            if done:
                await out.write(b"data: [DONE]\n\n")
            elif error is not None:
                await out.write(b"data: " + json.dumps(_error_body(502, error, "bad_gateway")).encode() + b"\n\n")
            await out.write_eof()
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass
        return out

    # --- recording ---------------------------------------------------------------------------------

    async def _record(
        self,
        record: CallRecord | None,
        *,
        response: Mapping[str, Any] | None = None,
        status_code: int | None = None,
        error: str | None = None,
    ) -> None:
        if record is None or self.store is None:
            return
        span = record.to_span(response=response, status_code=status_code, error=error)
        await self._write(span)

    async def _write(self, span: Span) -> None:
        assert self.store is not None
        try:
            result = await asyncio.wait_for(self.store.add_spans([span]), self.config.record_timeout)
        except Exception as exc:  # the caller's answer must not fail because the store is away
            self.counters["record_failed"] += 1
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
            logger.warning(
                "the store rejected the span of an LLM call of rollout %s attempt %s: %s",
                span.rollout_id,
                span.attempt_id,
                result.rejected[0][1],
            )
        else:
            self.counters["recorded"] += 1


__all__ = ["Backend", "LLMProxy", "ProxyConfig"]
