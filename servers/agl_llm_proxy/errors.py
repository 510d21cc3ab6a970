"""Error answers of the proxy, in the shape of the API the caller speaks (OpenAI or Anthropic)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

# Anthropic's error types by HTTP status (https://docs.anthropic.com/en/api/errors); others: api_error.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class BadRequest(Exception):
    """The caller's request cannot be served as it is (answered with 400 and this message)."""


def openai_error_body(status: int, message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": status}}


def anthropic_error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": _ANTHROPIC_TYPES.get(status, "api_error"), "message": message}}


def openai_error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    return web.json_response(openai_error_body(status, message, kind), status=status)


def anthropic_error(status: int, message: str, kind: str = "") -> web.Response:
    """An Anthropic-shaped error (``kind``, the OpenAI error type, is ignored: the status decides)."""
    return web.json_response(anthropic_error_body(status, message), status=status)


def is_anthropic_path(path: str) -> bool:
    """``/v1/messages`` and what lies under it (``/count_tokens``, ``/batches``: not served, but
    their callers read Anthropic's errors)."""
    path = path.rstrip("/")
    return path.endswith("/v1/messages") or "/v1/messages/" in path


def error_for_path(path: str, status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    """The error in the shape the route's callers expect."""
    return anthropic_error(status, message) if is_anthropic_path(path) else openai_error(status, message, kind)


def backend_error_message(status: int, body: bytes) -> str:
    """What a backend's error answer says, for logs and spans (OpenAI's and Anthropic's shapes)."""
    try:
        data = json.loads(body)
        error = data.get("error")
        message = error.get("message") if isinstance(error, dict) else data.get("message")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        message = None
    text = message if isinstance(message, str) else body[:500].decode("utf-8", "replace")
    return f"backend answered HTTP {status}: {text}"


__all__ = [
    "BadRequest",
    "anthropic_error",
    "anthropic_error_body",
    "backend_error_message",
    "error_for_path",
    "is_anthropic_path",
    "openai_error",
    "openai_error_body",
]
