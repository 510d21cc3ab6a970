"""The OpenAI routes of the proxy: chat and text completions, plain or streamed.

A plain answer is passed on byte for byte; a stream chunk by chunk, with the usage chunk the proxy
asked for on its own left out. The rebuilt response (token ids and logprobs of every choice) goes
into the call's span before the caller sees the end of the answer.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from agl_core import semconv
from agl_core.instrumentation.llm_record import StreamAccumulator
from agl_llm_proxy.errors import BadRequest, backend_error_message, openai_error, openai_error_body
from agl_llm_proxy.recording import CallRecord
from agl_llm_proxy.sse import SSEDecoder

if TYPE_CHECKING:
    from agl_llm_proxy.app import LLMProxy

OPERATIONS = {
    "chat/completions": semconv.GEN_AI_OPERATION_CHAT,
    "completions": semconv.GEN_AI_OPERATION_TEXT_COMPLETION,
}


class CallerGone(Exception):
    """The caller closed its connection while a stream was being passed on."""


def parse_body(raw: bytes, path: str) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, not {type(body).__name__}")
    if path == "chat/completions" and not isinstance(body.get("messages"), list):
        raise BadRequest("'messages' is required and must be a list of messages")
    if path == "completions" and "prompt" not in body:
        raise BadRequest("'prompt' is required")
    return body


def prepare_body(proxy: LLMProxy, body: dict[str, Any]) -> bool:
    """Ask the backend for token ids and (streams) usage; True when the proxy added the usage chunk
    on its own (it is then not passed on)."""
    if proxy.config.request_token_ids:
        body.setdefault("return_token_ids", True)
    if not body.get("stream"):
        return False
    options = dict(body.get("stream_options") or {})
    added = not options.get("include_usage")
    options["include_usage"] = True
    body["stream_options"] = options
    return added


async def complete(proxy: LLMProxy, request: web.Request, path: str) -> web.StreamResponse:
    call = proxy.new_call(request, OPERATIONS[path])
    raw = await request.read()
    try:
        body = parse_body(raw, path)
    except BadRequest as exc:
        await proxy.finish(call, status_code=400, error=str(exc))
        return openai_error(400, str(exc))
    stream = bool(body.get("stream"))
    added_usage = prepare_body(proxy, body)
    call.request = body
    sent = await proxy.forward(request, call, path, body, proxy.headers(request), openai_error)
    if isinstance(sent, web.Response):
        return sent
    backend, response = sent
    try:
        if response.status >= 400:
            return await pass_error(proxy, call, response)
        if stream and response.content_type == "text/event-stream":
            return await _stream(proxy, request, call, response, path, added_usage)
        return await _plain(proxy, call, response)
    finally:
        proxy.release(backend, response)


async def pass_error(proxy: LLMProxy, call: CallRecord, response: aiohttp.ClientResponse) -> web.Response:
    body = await response.read()
    await proxy.finish(call, status_code=response.status, error=backend_error_message(response.status, body))
    return web.Response(body=body, status=response.status, content_type=response.content_type)


async def _plain(proxy: LLMProxy, call: CallRecord, response: aiohttp.ClientResponse) -> web.Response:
    try:
        body = await response.read()
    except (TimeoutError, aiohttp.ClientError) as exc:
        proxy.broken(call)
        message = f"the backend broke off its answer: {type(exc).__name__}: {exc}"
        await proxy.finish(call, status_code=502, error=message)
        return openai_error(502, message, "bad_gateway")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        await proxy.finish(call, response=data, status_code=response.status)
    else:
        await proxy.finish(call, status_code=response.status, error="the backend's answer is not a JSON object")
    return web.Response(body=body, status=response.status, content_type=response.content_type or "application/json")


async def _stream(
    proxy: LLMProxy,
    request: web.Request,
    call: CallRecord,
    response: aiohttp.ClientResponse,
    path: str,
    added_usage: bool,
) -> web.StreamResponse:
    out = web.StreamResponse(status=response.status, headers={"Cache-Control": "no-cache"})
    out.content_type = "text/event-stream"
    await out.prepare(request)
    accumulator = StreamAccumulator(OPERATIONS[path])
    decoder = SSEDecoder()
    done = False
    error: str | None = None

    async def send(data: bytes) -> None:
        try:
            await out.write(data)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError) as exc:
            raise CallerGone(str(exc) or type(exc).__name__) from exc

    try:
        async for chunk in response.content.iter_any():
            for event in decoder.feed(chunk):
                if event.done:
                    done = True
                    continue
                data = event.json()
                if isinstance(data, dict):
                    if isinstance(data.get("error"), dict):
                        error = backend_error_message(response.status, event.data.encode())  # type: ignore[union-attr]
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
    except CallerGone as exc:
        error = f"the caller went away mid-stream: {exc}"
        await proxy.finish(call, response=accumulator.response(), status_code=response.status, error=error)
        return out
    except (TimeoutError, aiohttp.ClientError) as exc:
        proxy.broken(call)
        error = f"the backend broke off its stream: {type(exc).__name__}: {exc}"
    if error is None and not done:
        proxy.broken(call)
        error = "the backend's stream ended without [DONE]"
    await proxy.finish(call, response=accumulator.response(), status_code=response.status, error=error)
    try:
        if done:
            await out.write(b"data: [DONE]\n\n")
        elif error is not None:
            await out.write(b"data: " + json.dumps(openai_error_body(502, error, "bad_gateway")).encode() + b"\n\n")
        await out.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass
    return out


__all__ = ["OPERATIONS", "CallerGone", "complete", "parse_body", "pass_error", "prepare_body"]
