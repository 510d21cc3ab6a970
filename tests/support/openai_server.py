"""A small, deterministic OpenAI-compatible server for tests: chat and text completions, streamed or
not, returning token ids the way vLLM does with ``return_token_ids``.

Standard library only (``http.server``): it needs no event loop, runs in a background thread of the
test process (or as its own process: ``python tests/support/openai_server.py --port 8000``), and
speaks HTTP/1.1 with keep-alive and chunked server-sent events like a real server.

Usage::

    with OpenAIServer() as llm:
        client = openai.OpenAI(base_url=llm.base_url, api_key="test")
        client.chat.completions.create(model=llm.model, messages=[...],
                                       extra_body={"return_token_ids": True})
        llm.requests[-1]                    # the JSON body the server received
        llm.prompt_token_ids(messages)      # the ids it returned for that prompt
        llm.token_ids("echo: hi")           # ... and for a response text

Knobs (constructor arguments, all optional):

- ``model``: the model name it serves and reports (``"agl-test-model"``).
- ``token_ids``: ``"on_request"`` (default: only when the request has ``return_token_ids: true``,
  like vLLM), ``"always"`` or ``"never"``.
- ``reply``: ``f(body, index) -> str | dict``; a dict may hold ``content``, ``tool_calls``
  (``[{"name", "arguments"}]``) and ``finish_reason``. Default: ``"echo: " + the last user message``.
  :meth:`script` queues fixed replies that are used first, in order.
- ``chunk_tokens``: tokens per streamed chunk (2).
- ``latency``: seconds to wait before answering (0).
- ``api_key``: if set, requests must carry ``Authorization: Bearer <api_key>``.
- :meth:`fail_next` makes the next calls fail with an HTTP error (optionally only those for one
  model, with extra headers such as ``retry-after``).

The tokenizer is a toy: a token is a word with its trailing spaces, its id a CRC32 of the text
(so ids are stable across runs and machines); specials: 1 = BOS, 2 = EOS, 3 = end of message,
10.. = role markers. ``logprobs: true`` gives each response token a log probability of
``-(position % 7 + 1) / 10``.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BOS, EOS, END = 1, 2, 3
ROLES = {"system": 10, "user": 11, "assistant": 12, "tool": 13, "developer": 14}
CREATED = 1_700_000_000
_TOKEN = re.compile(r"\S+\s*|\s+")

Reply = Callable[[Mapping[str, Any], int], "str | Mapping[str, Any]"]


def token_ids(text: str) -> list[int]:
    """The toy tokenizer: one id per word (with its trailing whitespace)."""
    return [1000 + zlib.crc32(piece.encode()) % 50_000 for piece in _TOKEN.findall(text)]


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return ""


def prompt_token_ids(messages: Sequence[Mapping[str, Any]]) -> list[int]:
    """The prompt ids of a chat: BOS, then per message its role marker, content and END, then the
    assistant marker (the generation prompt)."""
    ids = [BOS]
    for message in messages:
        ids.append(ROLES.get(str(message.get("role")), 15))
        ids.extend(token_ids(_content_text(message.get("content"))))
        for call in message.get("tool_calls") or ():
            ids.extend(token_ids(json.dumps(call.get("function", call), sort_keys=True)))
        ids.append(END)
    ids.append(ROLES["assistant"])
    return ids


def logprob(position: int) -> float:
    return -((position % 7) + 1) / 10


def default_reply(body: Mapping[str, Any], index: int) -> str:
    if "messages" in body:
        users = [m for m in body["messages"] if isinstance(m, Mapping) and m.get("role") == "user"]
        last = _content_text(users[-1].get("content")) if users else ""
    else:
        prompt = body.get("prompt")
        last = prompt if isinstance(prompt, str) else ""
    return f"echo: {last}" + (f" #{index}" if index else "")


class _Failure:
    def __init__(
        self, status: int, message: str, count: int, model: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status, self.message, self.count = status, message, count
        self.model, self.headers = model, dict(headers or {})


class OpenAIServer:
    """The server; see the module docstring for the knobs. Start with ``with`` or :meth:`start`."""

    def __init__(
        self,
        *,
        model: str = "agl-test-model",
        token_ids: str = "on_request",
        reply: Reply | None = None,
        chunk_tokens: int = 2,
        latency: float = 0.0,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if token_ids not in ("on_request", "always", "never"):
            raise ValueError("token_ids must be 'on_request', 'always' or 'never'")
        self.model = model
        self.token_id_mode = token_ids
        self.reply = reply or default_reply
        self.chunk_tokens = max(1, chunk_tokens)
        self.latency = latency
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self._script: deque[str | Mapping[str, Any]] = deque()
        self._failures: deque[_Failure] = deque()
        self._lock = threading.Lock()
        self._counter = 0
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """What to give ``openai.OpenAI(base_url=...)``."""
        return f"http://{self._httpd.server_address[0]}:{self.port}/v1"

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="openai-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- knobs -------------------------------------------------------------------------------------

    def script(self, *replies: str | Mapping[str, Any]) -> None:
        """Queue replies used (in order) before the ``reply`` function."""
        with self._lock:
            self._script.extend(replies)

    def fail_next(
        self,
        status: int = 500,
        message: str = "injected failure",
        count: int = 1,
        *,
        model: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``count`` completion requests with an HTTP error.

        :param model: fail only requests for this model (others pass, and do not use up ``count``).
        :param headers: extra response headers of the errors (e.g. ``{"retry-after": "2"}``).
        """
        with self._lock:
            self._failures.append(_Failure(status, message, count, model, headers))

    # --- what the server returns, for assertions ---------------------------------------------------

    token_ids = staticmethod(token_ids)
    prompt_token_ids = staticmethod(prompt_token_ids)

    def response_token_ids(self, text: str, finish_reason: str = "stop") -> list[int]:
        """The response ids of a reply text (EOS appended when it finished with ``stop``)."""
        return token_ids(text) + ([EOS] if finish_reason == "stop" else [])

    # --- handling ----------------------------------------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}-{self._counter:06d}"

    def _take_failure(self, body: Mapping[str, Any]) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.model is None or failure.model == body.get("model"):
                    failure.count -= 1
                    if failure.count <= 0:
                        self._failures.remove(failure)
                    return failure
            return None

    def _reply_for(self, body: Mapping[str, Any], index: int) -> dict[str, Any]:
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        reply = scripted if scripted is not None else self.reply(body, index)
        if isinstance(reply, str):
            reply = {"content": reply}
        reply = dict(reply)
        calls = [
            {
                "id": call.get("id") or f"call_{index}_{i}",
                "type": "function",
                "function": {"name": call["name"], "arguments": call.get("arguments", "{}")},
            }
            for i, call in enumerate(reply.get("tool_calls") or ())
        ]
        reply["tool_calls"] = calls
        reply.setdefault("content", "")
        reply.setdefault("finish_reason", "tool_calls" if calls else "stop")
        text = reply["content"] + "".join(json.dumps(c["function"], sort_keys=True) for c in calls)
        reply["token_ids"] = self.response_token_ids(text, reply["finish_reason"])
        reply["pieces"] = tokens(reply["content"])
        return reply

    def _wants_ids(self, body: Mapping[str, Any]) -> bool:
        if self.token_id_mode == "always":
            return True
        return self.token_id_mode == "on_request" and bool(body.get("return_token_ids"))

    def complete(self, body: dict[str, Any], chat: bool) -> tuple[dict[str, Any], list[dict[str, Any]], list[int]]:
        """(response head, replies, prompt ids) for a request."""
        if chat:
            prompt_ids = prompt_token_ids(body["messages"])
        else:
            prompt = body.get("prompt")
            prompt_ids = (
                list(prompt)
                if isinstance(prompt, list) and all(isinstance(x, int) for x in prompt)
                else [BOS, *token_ids(prompt if isinstance(prompt, str) else "")]
            )
        replies = [self._reply_for(body, i) for i in range(int(body.get("n") or 1))]
        head = {
            "id": self._next_id("chatcmpl" if chat else "cmpl"),
            "created": CREATED,
            "model": body.get("model") or self.model,
        }
        return head, replies, prompt_ids

    def full_response(self, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        head, replies, prompt_ids = self.complete(body, chat)
        ids = self._wants_ids(body)
        choices = []
        for index, reply in enumerate(replies):
            choice: dict[str, Any] = {"index": index, "finish_reason": reply["finish_reason"]}
            if chat:
                message: dict[str, Any] = {"role": "assistant", "content": reply["content"] or None}
                if reply["tool_calls"]:
                    message["tool_calls"] = reply["tool_calls"]
                choice["message"] = message
            else:
                choice["text"] = reply["content"]
            if body.get("logprobs"):
                values = [logprob(i) for i in range(len(reply["token_ids"]))]
                choice["logprobs"] = (
                    {"content": [{"token": f"t{i}", "logprob": v, "top_logprobs": []} for i, v in enumerate(values)]}
                    if chat
                    else {"token_logprobs": values, "tokens": [], "text_offset": []}
                )
            if ids:
                choice["token_ids"] = reply["token_ids"]
                if not chat:
                    choice["prompt_token_ids"] = prompt_ids
            choices.append(choice)
        response = {
            **head,
            "object": "chat.completion" if chat else "text_completion",
            "choices": choices,
            "usage": self._usage(prompt_ids, replies),
        }
        if ids and chat:
            response["prompt_token_ids"] = prompt_ids
        return response

    @staticmethod
    def _usage(prompt_ids: list[int], replies: list[dict[str, Any]]) -> dict[str, int]:
        completion = sum(len(r["token_ids"]) for r in replies)
        return {
            "prompt_tokens": len(prompt_ids),
            "completion_tokens": completion,
            "total_tokens": len(prompt_ids) + completion,
        }

    def stream_chunks(self, body: dict[str, Any], chat: bool) -> Iterator[dict[str, Any]]:
        """The chunks of a streamed response, in order (vLLM's shape)."""
        head, replies, prompt_ids = self.complete(body, chat)
        ids = self._wants_ids(body)
        kind = "chat.completion.chunk" if chat else "text_completion"
        first = True
        for index, reply in enumerate(replies):
            pieces = reply["pieces"]
            id_list = reply["token_ids"]
            step = self.chunk_tokens
            groups = [(pieces[i : i + step], id_list[i : i + step], i) for i in range(0, max(len(pieces), 1), step)]
            # Tool-call and EOS ids that have no visible text go with the last chunk.
            if len(id_list) > len(pieces) and groups:
                last_text, _, start = groups[-1]
                groups[-1] = (last_text, id_list[start:], start)
            for n, (text_pieces, chunk_ids, start) in enumerate(groups):
                text = "".join(text_pieces)
                choice: dict[str, Any] = {"index": index, "finish_reason": None}
                if chat:
                    delta: dict[str, Any] = {"content": text}
                    if n == 0:
                        delta["role"] = "assistant"
                    if n == len(groups) - 1 and reply["tool_calls"]:
                        delta["tool_calls"] = [
                            {
                                "index": i,
                                "id": c["id"],
                                "type": "function",
                                "function": {
                                    "name": c["function"]["name"],
                                    "arguments": c["function"]["arguments"],
                                },
                            }
                            for i, c in enumerate(reply["tool_calls"])
                        ]
                    choice["delta"] = delta
                else:
                    choice["text"] = text
                if body.get("logprobs"):
                    values = [logprob(start + i) for i in range(len(chunk_ids))]
                    choice["logprobs"] = (
                        {
                            "content": [
                                {"token": f"t{start + i}", "logprob": v, "top_logprobs": []}
                                for i, v in enumerate(values)
                            ]
                        }
                        if chat
                        else {"token_logprobs": values, "tokens": [], "text_offset": []}
                    )
                if ids:
                    choice["token_ids"] = chunk_ids
                    if not chat and n == 0:
                        choice["prompt_token_ids"] = prompt_ids
                chunk = {**head, "object": kind, "choices": [choice]}
                if ids and chat and first:
                    chunk["prompt_token_ids"] = prompt_ids
                first = False
                yield chunk
            final: dict[str, Any] = {"index": index, "finish_reason": reply["finish_reason"]}
            if chat:
                final["delta"] = {}
            else:
                final["text"] = ""
            yield {**head, "object": kind, "choices": [final]}
        if (body.get("stream_options") or {}).get("include_usage"):
            yield {**head, "object": kind, "choices": [], "usage": self._usage(prompt_ids, replies)}


def _error(status: int, message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": status}}


def _handler_for(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description="A deterministic OpenAI-compatible test server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", default="agl-test-model")
    parser.add_argument("--token-ids", default="on_request", choices=("on_request", "always", "never"))
    parser.add_argument("--chunk-tokens", type=int, default=2)
    parser.add_argument("--reply", help="module:function to answer with (e.g. support.apo_models:reply)")
    args = parser.parse_args()
    reply = None
    if args.reply:
        import importlib

        module, _, name = args.reply.partition(":")
        reply = getattr(importlib.import_module(module), name)
    server = OpenAIServer(
        model=args.model,
        token_ids=args.token_ids,
        reply=reply,
        chunk_tokens=args.chunk_tokens,
        host=args.host,
        port=args.port,
    )
    print(server.base_url, flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
