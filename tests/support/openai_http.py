"""The HTTP side of the OpenAI-compatible test server (support.openai_server): routes, JSON errors
shaped like OpenAI's, authorisation, and server-sent events over chunked HTTP/1.1."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from support.openai_server import OpenAIServer

# The ``created`` time of every response and model: fixed, so responses are the same in every run.
CREATED = 1_700_000_000


def _error(status: int, message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": status}}


def handler_for(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

        def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            if server.api_key is None or self.headers.get("Authorization") == f"Bearer {server.api_key}":
                return True
            self._send_json(401, _error(401, "invalid api key", "authentication_error"))
            return False

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._send_json(
                    200,
                    {
                        "object": "list",
                        "data": [
                            {
                                "id": server.model,
                                "object": "model",
                                "created": CREATED,
                                "owned_by": "agl-tests",
                            }
                        ],
                    },
                )
            else:
                self._send_json(404, _error(404, f"no route {self.path}"))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if not self._authorised():
                return
            path = self.path.rstrip("/")
            if path not in ("/v1/chat/completions", "/v1/completions"):
                self._send_json(404, _error(404, f"no route {self.path}"))
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError as exc:
                self._send_json(400, _error(400, f"the body is not JSON: {exc}"))
                return
            chat = path == "/v1/chat/completions"
            if chat and not isinstance(body.get("messages"), list):
                self._send_json(400, _error(400, "messages is required and must be a list"))
                return
            if not chat and "prompt" not in body:
                self._send_json(400, _error(400, "prompt is required"))
                return
            with server._lock:
                server.requests.append(body)
            if server.latency:
                time.sleep(server.latency)
            failure = server._take_failure(body)
            if failure is not None:
                self._send_json(
                    failure.status, _error(failure.status, failure.message, "server_error"), failure.headers
                )
                return
            if body.get("stream"):
                self._stream(body, chat)
            else:
                self._send_json(200, server.full_response(body, chat))

        def _stream(self, body: dict[str, Any], chat: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def write(data: bytes) -> None:
                self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            for chunk in server.stream_chunks(body, chat):
                write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            write(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler
