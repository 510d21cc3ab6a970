"""An OpenAI-compatible HTTP server in front of a :class:`~agl_plugins.verl.cpu_engine.generation.CpuGenerator`.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``, ``GET /health``.
Answers carry what vLLM's do when asked with ``return_token_ids`` (agl's LLM proxy always asks):
``prompt_token_ids`` (top level for chat, on the choice for text completions), ``token_ids`` on the
choice, and ``logprobs`` when the request asks for them. ``n`` > 1 samples several choices.
``stream: true`` is answered as a server-sent event stream with one chunk per token (sent once
the whole answer is sampled: the CPU engine samples a batch at a time). Tool calls in the hermes
format (``<tool_call>{"name": ..., "arguments": ...}</tool_call>``) become OpenAI ``tool_calls``
when the request offers tools.

Requests that arrive together are sampled together (one ``generate`` per batch, in a thread so
the event loop keeps serving). :meth:`CpuServer.sleep` closes a gate: calls in flight finish,
new ones wait until :meth:`CpuServer.wake_up` (verl puts its rollout servers to sleep while the
actor trains).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from agl_plugins.verl.cpu_engine.generation import CpuGenerator, GenRequest, GenResult, Sampling

logger = logging.getLogger(__name__)

_TOOL_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


class BadRequest(ValueError):
    """A request the server cannot serve, with a message for the caller."""


@dataclass
class _Pending:
    request: GenRequest
    future: asyncio.Future[GenResult]


class Batcher:
    """Collects the requests that arrive while a batch is being sampled and samples them as the next one."""

    def __init__(self, generator: CpuGenerator, max_batch: int = 64) -> None:
        self.generator = generator
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def submit(self, requests: Sequence[GenRequest]) -> list[GenResult]:
        loop = asyncio.get_running_loop()
        pending = [_Pending(r, loop.create_future()) for r in requests]
        for item in pending:
            self._queue.put_nowait(item)
        return list(await asyncio.gather(*(p.future for p in pending)))

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(0)  # let requests sent in the same instant join this batch
            while not self._queue.empty() and len(batch) < self.max_batch:
                batch.append(self._queue.get_nowait())
            try:
                results = await asyncio.to_thread(self.generator.generate, [p.request for p in batch])
            except Exception as exc:  # fail the batch's requests, keep serving
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            self.batches += 1
            for item, result in zip(batch, results, strict=True):
                if not item.future.done():
                    item.future.set_result(result)


def _sampling(body: dict[str, Any]) -> Sampling:
    try:
        return Sampling(
            temperature=float(body.get("temperature", 1.0) if body.get("temperature") is not None else 1.0),
            top_p=float(body.get("top_p") if body.get("top_p") is not None else 1.0),
            top_k=max(0, int(body.get("top_k") or 0)),
        )
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"bad sampling parameter: {exc}") from None


def _tool_calls(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Hermes-format tool calls out of ``text`` (the text without them, the calls)."""
    calls = []
    for match in _TOOL_CALL.finditer(text):
        try:
            data = json.loads(match.group(1))
            name, arguments = data["name"], data.get("arguments", {})
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # not a well-formed call: it stays in the text
        calls.append(
            {
                "id": f"call_{uuid.uuid4().hex[:16]}",
                "type": "function",
                "function": {"name": str(name), "arguments": json.dumps(arguments)},
            }
        )
    return (_TOOL_CALL.sub("", text).strip() if calls else text), calls


class CpuServer:
    """The HTTP server (see the module docstring).

    :param generator: the model that answers.
    :param model_name: the model id callers send and ``/v1/models`` lists.
    :param max_tokens: tokens generated when a request does not say (verl's ``response_length``).
    :param tool_parser: ``hermes`` or None (tool calls stay in the text).
    """

    def __init__(
        self,
        generator: CpuGenerator,
        *,
        model_name: str,
        max_tokens: int = 512,
        max_batch: int = 64,
        tool_parser: str | None = "hermes",
    ) -> None:
        self.generator = generator
        self.model_name = model_name
        self.max_tokens = max_tokens
        self.tool_parser = tool_parser
        self.batcher = Batcher(generator, max_batch)
        self.awake = asyncio.Event()
        self.awake.set()
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.served = 0
        self.host = ""
        self.port = 0
        self._runner: web.AppRunner | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> CpuServer:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._text)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        self.batcher.start()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.host, self.port = host, int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        await self.batcher.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def sleep(self) -> None:
        """Stop taking new calls and wait for those in flight."""
        self.awake.clear()
        await self._idle.wait()

    def wake_up(self) -> None:
        self.awake.set()

    async def drain(self) -> None:
        await self._idle.wait()

    # --- sampling ----------------------------------------------------------------------------------

    async def sample(self, prompt_ids: list[int], count: int, max_tokens: int, sampling: Sampling) -> list[GenResult]:
        """``count`` samples for a prompt, once the server is awake."""
        await self.awake.wait()
        self.in_flight += 1
        self._idle.clear()
        try:
            return await self.batcher.submit([GenRequest(prompt_ids, max_tokens, sampling)] * count)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    def _max_tokens(self, body: dict[str, Any]) -> int:
        value = body.get("max_completion_tokens", body.get("max_tokens"))
        if value is None:
            return self.max_tokens
        if not isinstance(value, int) or value < 1:
            raise BadRequest(f"max_tokens must be a positive integer, not {value!r}")
        return value

    # --- handlers ----------------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        return body

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._body(request)
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise BadRequest("'messages' is required and must be a non-empty list")
            try:
                prompt_ids = self.generator.chat_prompt_ids(messages, body.get("tools"))
            except Exception as exc:  # the chat template rejected the messages
                raise BadRequest(f"the chat template cannot render these messages: {exc}") from None
            results = await self.sample(prompt_ids, self._n(body), self._max_tokens(body), _sampling(body))
        except BadRequest as exc:
            return _error(400, str(exc))
        except ValueError as exc:  # e.g. the prompt is longer than the model allows
            return _error(400, str(exc))
        choices = [self._chat_choice(i, r, body) for i, r in enumerate(results)]
        response = self._envelope("chat.completion", choices, prompt_ids, results)
        response["prompt_token_ids"] = prompt_ids
        if body.get("stream"):
            return await self._stream(request, response, chat=True)
        return web.json_response(response)

    async def _text(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._body(request)
            prompt = body.get("prompt")
            if isinstance(prompt, list) and len(prompt) == 1 and not isinstance(prompt[0], int):
                prompt = prompt[0]  # one prompt in a list
            if isinstance(prompt, str):
                prompt_ids = self.generator.text_prompt_ids(prompt)
            elif isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
                prompt_ids = list(prompt)
            else:
                raise BadRequest("'prompt' must be a string or a list of token ids (one prompt per request)")
            results = await self.sample(prompt_ids, self._n(body), self._max_tokens(body), _sampling(body))
        except (BadRequest, ValueError) as exc:
            return _error(400, str(exc))
        choices = []
        for index, result in enumerate(results):
            choice: dict[str, Any] = {
                "index": index,
                "text": self.generator.decode(result.token_ids),
                "finish_reason": result.finish_reason,
                "token_ids": result.token_ids,
                "prompt_token_ids": prompt_ids,
            }
            if body.get("logprobs") is not None:
                choice["logprobs"] = {
                    "tokens": [self.generator.token_text(t) for t in result.token_ids],
                    "token_logprobs": result.logprobs,
                }
            choices.append(choice)
        response = self._envelope("text_completion", choices, prompt_ids, results)
        if body.get("stream"):
            return await self._stream(request, response, chat=False)
        return web.json_response(response)

    def _n(self, body: dict[str, Any]) -> int:
        n = body.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= 64:
            raise BadRequest(f"n must be an integer within [1, 64], not {n!r}")
        return n

    def _chat_choice(self, index: int, result: GenResult, body: dict[str, Any]) -> dict[str, Any]:
        text = self.generator.decode(result.token_ids)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        finish = result.finish_reason
        if body.get("tools") and self.tool_parser == "hermes":
            raw = self.generator.tokenizer.decode(result.token_ids, skip_special_tokens=False)
            content, calls = _tool_calls(raw)
            if calls:
                message = {"role": "assistant", "content": content or None, "tool_calls": calls}
                finish = "tool_calls"
        choice: dict[str, Any] = {"index": index, "message": message, "finish_reason": finish}
        choice["token_ids"] = result.token_ids
        if body.get("logprobs"):
            choice["logprobs"] = {
                "content": [
                    {"token": self.generator.token_text(t), "logprob": lp, "top_logprobs": []}
                    for t, lp in zip(result.token_ids, result.logprobs, strict=True)
                ]
            }
        return choice

    def _envelope(
        self, kind: str, choices: list[dict[str, Any]], prompt_ids: list[int], results: list[GenResult]
    ) -> dict[str, Any]:
        self.served += 1
        completion = sum(len(r.token_ids) for r in results)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": kind,
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": len(prompt_ids),
                "completion_tokens": completion,
                "total_tokens": len(prompt_ids) + completion,
            },
        }

    async def _stream(self, request: web.Request, response: dict[str, Any], *, chat: bool) -> web.StreamResponse:
        """The answer as an SSE stream: a chunk per token, then the finish reason, usage and [DONE]."""
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await out.prepare(request)
        base = {k: response[k] for k in ("id", "created", "model")}
        base["object"] = "chat.completion.chunk" if chat else "text_completion"

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            await out.write(b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n")

        for choice in response["choices"]:
            index, ids = choice["index"], choice["token_ids"]
            logprobs = choice.get("logprobs")
            if chat:
                first = {"index": index, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                await send([first], prompt_token_ids=response["prompt_token_ids"])
            for position, token in enumerate(ids):
                delta: dict[str, Any] = {"index": index, "token_ids": [token], "finish_reason": None}
                text = self.generator.token_text(token)
                if chat:
                    delta["delta"] = {"content": text}
                    if logprobs:
                        delta["logprobs"] = {"content": [logprobs["content"][position]]}
                else:
                    delta["text"] = text
                    if position == 0:
                        delta["prompt_token_ids"] = choice["prompt_token_ids"]
                    if logprobs:
                        delta["logprobs"] = {"token_logprobs": [logprobs["token_logprobs"][position]]}
                await send([delta])
            last: dict[str, Any] = {"index": index, "finish_reason": choice["finish_reason"]}
            if chat:
                tool_calls = choice["message"].get("tool_calls")
                last["delta"] = (
                    {"tool_calls": [{"index": i, **c} for i, c in enumerate(tool_calls)]} if tool_calls else {}
                )
            else:
                last["text"] = ""
            await send([last])
        await send([], usage=response["usage"])
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.model_name, "object": "model", "owned_by": "agl-cpu"}]}
        )

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "awake": self.awake.is_set(),
                "in_flight": self.in_flight,
                "served": self.served,
                "batches": self.batcher.batches,
                "weights_version": self.generator.weights_version,
            }
        )


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request_error", "code": status}}, status=status
    )


__all__ = ["BadRequest", "Batcher", "CpuServer"]
