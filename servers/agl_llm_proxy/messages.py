"""The Anthropic Messages API route (``POST /v1/messages``), plain or streamed.

In front of OpenAI-compatible backends the request is translated into a chat completion (token
ids asked for as on the OpenAI routes) and the answer back into a message or Messages events
(:mod:`agl_llm_proxy.anthropic`, :mod:`agl_llm_proxy.anthropic_stream`). With
``ProxyConfig.native_messages`` the backends serve ``/v1/messages`` themselves and calls are passed
through unchanged. Either way the call's span holds OpenAI chat bodies (``agl.llm.proxy.api`` says
``anthropic``), written before the caller sees the end of the answer, and errors have Anthropic's
shape (``{"type": "error", "error": {"type", "message"}}``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from agl_core import semconv
from agl_core.instrumentation.llm_record import StreamAccumulator
from agl_llm_proxy import anthropic
from agl_llm_proxy.anthropic_stream import EventWriter, MessageAccumulator, sse
from agl_llm_proxy.errors import BadRequest, anthropic_error, anthropic_error_body, backend_error_message
from agl_llm_proxy.openai_api import CallerGone, prepare_body
from agl_llm_proxy.recording import CallRecord
from agl_llm_proxy.sse import SSEDecoder

if TYPE_CHECKING:
    from agl_llm_proxy.app import LLMProxy


class BadGateway(Exception):
    """The backend broke off its answer before the proxy had it whole."""


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not JSON: {exc}") from None
    return anthropic.validate(body)


async def handle(proxy: LLMProxy, request: web.Request) -> web.StreamResponse:
    call = proxy.new_call(request, semconv.GEN_AI_OPERATION_CHAT, api="anthropic")
    native = proxy.config.native_messages
    try:
        body = _parse(await request.read())
    except BadRequest as exc:
        await proxy.finish(call, status_code=400, error=str(exc))
        return anthropic_error(400, str(exc))
    try:
        translated: dict[str, Any] | None = anthropic.to_openai_request(body)
    except BadRequest as exc:
        if not native:
            await proxy.finish(call, status_code=400, error=str(exc))
            return anthropic_error(400, str(exc))
        translated = None  # a native backend may take what the translation cannot: let it judge
    if native:
        call.request = translated if translated is not None else body
        return await _native(proxy, request, call, body)
    assert translated is not None
    prepare_body(proxy, translated)
    call.request = translated
    sent = await proxy.forward(request, call, "chat/completions", translated, proxy.headers(request), anthropic_error)
    if isinstance(sent, web.Response):
        return sent
    backend, response = sent
    try:
        if response.status >= 400:
            raw = await response.read()
            message = backend_error_message(response.status, raw)
            await proxy.finish(call, status_code=response.status, error=message)
            return anthropic_error(response.status, message)
        if body.get("stream") and response.content_type == "text/event-stream":
            return await _translated_stream(proxy, request, call, response, body)
        return await _translated_plain(proxy, call, response, body)
    finally:
        proxy.release(backend, response)


async def _read_json(proxy: LLMProxy, call: CallRecord, response: aiohttp.ClientResponse) -> tuple[bytes, Any]:
    try:
        raw = await response.read()
    except (TimeoutError, aiohttp.ClientError) as exc:
        proxy.broken(call)
        raise BadGateway(f"the backend broke off its answer: {type(exc).__name__}: {exc}") from exc
    try:
        return raw, json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw, None


async def _translated_plain(
    proxy: LLMProxy, call: CallRecord, response: aiohttp.ClientResponse, body: dict[str, Any]
) -> web.Response:
    try:
        _, data = await _read_json(proxy, call, response)
    except BadGateway as exc:
        await proxy.finish(call, status_code=502, error=str(exc))
        return anthropic_error(502, str(exc))
    if not isinstance(data, dict):
        message = "the backend's answer is not a JSON object"
        await proxy.finish(call, status_code=502, error=message)
        return anthropic_error(502, message)
    await proxy.finish(call, response=data, status_code=response.status)
    return web.json_response(anthropic.to_anthropic_message(data, body))


async def _open_stream(request: web.Request, status: int) -> tuple[web.StreamResponse, Any]:
    out = web.StreamResponse(status=status, headers={"Cache-Control": "no-cache"})
    out.content_type = "text/event-stream"
    await out.prepare(request)

    async def send(data: bytes) -> None:
        if not data:
            return
        try:
            await out.write(data)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError) as exc:
            raise CallerGone(str(exc) or type(exc).__name__) from exc

    return out, send


async def _end_stream(out: web.StreamResponse, last: bytes) -> None:
    try:
        await out.write(last)
        await out.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass


async def _translated_stream(
    proxy: LLMProxy, request: web.Request, call: CallRecord, response: aiohttp.ClientResponse, body: dict[str, Any]
) -> web.StreamResponse:
    out, send = await _open_stream(request, response.status)
    accumulator = StreamAccumulator(semconv.GEN_AI_OPERATION_CHAT)
    writer = EventWriter(body)
    decoder = SSEDecoder()
    done = False
    error: str | None = None
    try:
        async for chunk in response.content.iter_any():
            for event in decoder.feed(chunk):
                if event.done:
                    done = True
                    continue
                data = event.json()
                if not isinstance(data, dict):
                    continue
                if isinstance(data.get("error"), dict):
                    error = backend_error_message(response.status, event.data.encode())  # type: ignore[union-attr]
                    continue
                accumulator.add(data)
                await send(writer.add(data))
        for event in decoder.close():
            done = done or event.done
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
    await _end_stream(out, writer.finish() if error is None else sse("error", anthropic_error_body(502, error)))
    return out


async def _native(proxy: LLMProxy, request: web.Request, call: CallRecord, body: dict[str, Any]) -> web.StreamResponse:
    headers = proxy.headers(request, native_messages=True)
    sent = await proxy.forward(request, call, "messages", body, headers, anthropic_error)
    if isinstance(sent, web.Response):
        return sent
    backend, response = sent
    try:
        if response.status >= 400:
            raw = await response.read()
            await proxy.finish(call, status_code=response.status, error=backend_error_message(response.status, raw))
            return web.Response(body=raw, status=response.status, content_type=response.content_type)
        if body.get("stream") and response.content_type == "text/event-stream":
            return await _native_stream(proxy, request, call, response)
        try:
            raw, data = await _read_json(proxy, call, response)
        except BadGateway as exc:
            await proxy.finish(call, status_code=502, error=str(exc))
            return anthropic_error(502, str(exc))
        if isinstance(data, dict):
            await proxy.finish(call, response=anthropic.message_to_openai(data), status_code=response.status)
        else:
            await proxy.finish(call, status_code=response.status, error="the backend's answer is not a JSON object")
        return web.Response(body=raw, status=response.status, content_type=response.content_type or "application/json")
    finally:
        proxy.release(backend, response)


async def _native_stream(
    proxy: LLMProxy, request: web.Request, call: CallRecord, response: aiohttp.ClientResponse
) -> web.StreamResponse:
    out, send = await _open_stream(request, response.status)
    accumulator = MessageAccumulator()
    decoder = SSEDecoder()
    held = b""  # the message_stop event, passed on once the call is recorded
    error: str | None = None
    try:
        async for chunk in response.content.iter_any():
            for event in decoder.feed(chunk):
                data = event.json()
                if isinstance(data, dict):
                    accumulator.add(data)
                    if data.get("type") == "error":
                        error = backend_error_message(response.status, (event.data or "").encode())
                    if data.get("type") == "message_stop":
                        held += event.encode()
                        continue
                await send(event.encode())
        for event in decoder.close():
            data = event.json()
            if isinstance(data, dict):
                accumulator.add(data)
            if isinstance(data, dict) and data.get("type") == "message_stop":
                held += event.encode()
            else:
                await send(event.encode())
    except CallerGone as exc:
        error = f"the caller went away mid-stream: {exc}"
    except (TimeoutError, aiohttp.ClientError) as exc:
        proxy.broken(call)
        error = f"the backend broke off its stream: {type(exc).__name__}: {exc}"
    if error is None and not accumulator.stopped:
        proxy.broken(call)
        error = "the backend's stream ended without message_stop"
    recorded = anthropic.message_to_openai(accumulator.result())
    await proxy.finish(call, response=recorded, status_code=response.status, error=error)
    if held:
        await _end_stream(out, held)
    elif error is not None and not error.startswith("the caller"):
        await _end_stream(out, sse("error", anthropic_error_body(502, error)))
    return out


__all__ = ["handle"]
