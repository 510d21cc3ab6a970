"""``POST /v1/traces``: OTLP over HTTP, protobuf (``application/x-protobuf``) or JSON (``application/json``).

Spans are placed and stored exactly as by the OTLP/gRPC receiver (the same
:class:`~agl_plugins.otlp.receiver.OtlpTraceService`, so the same attributes place them and the same
partial success reports the spans it could not place). Answers follow the OTLP/HTTP spec: 200 with
an ``ExportTraceServiceResponse`` in the request's encoding; 400 with a ``google.rpc.Status`` (in
the request's encoding) for a body that cannot be decoded; 413 for a body or an export too large;
415 for another content type; 503 (which exporters retry) when the store cannot take the spans now.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from agl_core.errors import AglError
from agl_core.store.wire import varint
from agl_plugins.otlp.receiver import ExportTooLargeError
from agl_server.http.app import error_response
from agl_server.http.context import HttpContext
from agl_server.http.otlp_json import OtlpJsonError, parse_otlp_json, response_json

logger = logging.getLogger("agl_server.otlp")

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# google.rpc.Code numbers of the Status bodies.
_INVALID_ARGUMENT, _RESOURCE_EXHAUSTED, _UNAVAILABLE = 3, 8, 14
# RESOURCE_EXHAUSTED here is the store refusing writes while it closes: retry elsewhere or later.
_HTTP_OF_CODE = {3: 400, 5: 400, 8: 503, 9: 400, 14: 503, 16: 401}


def _status_bytes(code: int, message: str) -> bytes:
    """A serialized google.rpc.Status{code, message} (two fields; no dependency for it)."""
    text = message.encode()
    return b"\x08" + varint(code) + b"\x12" + varint(len(text)) + text


def _status_response(http_status: int, code: int, message: str, encoding: str) -> web.Response:
    if encoding == PROTOBUF:
        return web.Response(status=http_status, body=_status_bytes(code, message), content_type=PROTOBUF)
    return web.Response(status=http_status, text=json.dumps({"code": code, "message": message}), content_type=JSON)


def register_routes(app: web.Application, ctx: HttpContext) -> None:
    otlp = ctx.otlp

    async def traces(request: web.Request) -> web.Response:
        if otlp is None:
            return error_response(
                404, "the OTLP receiver is disabled on this agl-server (plugin service-otlp is blocked)"
            )
        encoding = request.content_type  # without parameters such as charset
        if encoding not in (PROTOBUF, JSON):
            return error_response(
                415,
                f"Content-Type {request.headers.get('Content-Type', '(none)')!r} is not OTLP; send "
                f"{PROTOBUF} or {JSON}",
                {"Accept-Post": f"{PROTOBUF}, {JSON}"},
            )
        if request.content_length is not None and request.content_length > ctx.max_body_bytes:
            return _too_large(encoding, f"the body has {request.content_length} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _too_large(encoding, "the body (decompressed) is larger")
        except web.RequestPayloadError as exc:  # a body that does not inflate, a broken chunked encoding
            message = str(exc).replace("400, message:", "").strip()
            return _status_response(
                400, _INVALID_ARGUMENT, f"the body could not be read: {message} (check Content-Encoding)", encoding
            )
        try:
            raw = parse_otlp_json(body) if encoding == JSON else body
            export = otlp.parse_request(raw)
        except OtlpJsonError as exc:
            return _status_response(400, _INVALID_ARGUMENT, str(exc), encoding)
        except Exception as exc:  # protobuf's DecodeError, or upb's nesting limit
            return _status_response(
                400,
                _INVALID_ARGUMENT,
                f"the body could not be decoded as an OTLP ExportTraceServiceRequest ({exc})",
                encoding,
            )
        try:
            response = await otlp.export(export, "http")
        except ExportTooLargeError as exc:
            return _status_response(413, _RESOURCE_EXHAUSTED, exc.message, encoding)
        except AglError as exc:
            number = exc.code.value[0]
            return _status_response(_HTTP_OF_CODE.get(number, 503), number, exc.message, encoding)
        except Exception as exc:
            logger.exception("OTLP/HTTP export failed")
            return _status_response(503, _UNAVAILABLE, f"agl-server could not store the spans: {exc}", encoding)
        if encoding == JSON:
            return web.Response(text=response_json(response), content_type=JSON)
        return web.Response(body=response.SerializeToString(), content_type=PROTOBUF)

    def _too_large(encoding: str, what: str) -> web.Response:
        return _status_response(
            413,
            _RESOURCE_EXHAUSTED,
            f"{what}; this listener accepts at most {ctx.max_body_bytes} bytes per request (--max-message-mb): "
            "export fewer spans per request",
            encoding,
        )

    app.router.add_post("/v1/traces", traces)
