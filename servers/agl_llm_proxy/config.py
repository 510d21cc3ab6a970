"""Settings of the LLM proxy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(kw_only=True)
class ProxyConfig:
    """Settings of :class:`LLMProxy`.

    :param request_token_ids: add ``return_token_ids: true`` to every request (vLLM); turn off for
        backends that reject unknown parameters.
    :param native_messages: the backends serve the Anthropic Messages API (``/v1/messages``)
        themselves (Anthropic, recent vLLM): such calls are passed through, not translated into
        chat completions.
    :param retry_after: seconds a backend that failed to connect is left out.
    :param connect_timeout: seconds to open a connection to a backend.
    :param read_timeout: seconds a backend may stay silent (before its first byte, or between two
        stream chunks); None waits as long as it takes.
    :param record_timeout: seconds to wait for the store to acknowledge a span before answering
        without it (the span is then logged as lost and counted in ``/health``).
    :param backend_api_key: sent to the backends as a bearer token (and ``x-api-key`` to native
        Messages backends) instead of the caller's.
    :param token: callers must send ``Authorization: Bearer <token>`` or ``x-api-key: <token>``
        (all routes but ``/health``); others get 401. The caller's token is then never passed on.
    :param tls_cert: PEM certificate chain file; with ``tls_key``, the proxy serves HTTPS.
    :param tls_key: PEM private key file.
    :param system: the ``gen_ai.system`` of the spans.
    :param max_body_mb: largest request body accepted.
    """

    request_token_ids: bool = True
    native_messages: bool = False
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


__all__ = ["ProxyConfig"]
