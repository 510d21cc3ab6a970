"""A small, deterministic OpenAI-compatible server for tests: chat and text completions, streamed or
not, returning token ids the way vLLM does with ``return_token_ids``.

Standard library only (``http.server``): it needs no event loop, runs in a background thread of the
test process (or as its own process: ``cd tests && python -m support.openai_server --port 8000``), and
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

The tokenizer is a toy (support.toy_tokenizer): a token is a word with its trailing spaces, its id a
CRC32 of the text; ``logprobs: true`` gives each response token a log probability of
``-(position % 7 + 1) / 10``. The HTTP side (routes, errors, server-sent events) is in
support.openai_http.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from http.server import ThreadingHTTPServer
from typing import Any

from support.openai_http import CREATED, handler_for
from support.toy_tokenizer import BOS, EOS, content_text, logprob, prompt_token_ids, token_ids, tokens

__all__ = ["BOS", "EOS", "OpenAIServer", "default_reply", "prompt_token_ids", "token_ids"]

Reply = Callable[[Mapping[str, Any], int], "str | Mapping[str, Any]"]


def default_reply(body: Mapping[str, Any], index: int) -> str:
    if "messages" in body:
        users = [m for m in body["messages"] if isinstance(m, Mapping) and m.get("role") == "user"]
        last = content_text(users[-1].get("content")) if users else ""
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
        self._httpd = ThreadingHTTPServer((host, port), handler_for(self))
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
