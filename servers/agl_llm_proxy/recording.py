"""One span per proxied call, with the attributes the ``openai`` instrumentation writes.

The bodies go through :mod:`agl_core.instrumentation.llm_record`, the module the client
instrumentation uses, so the adapters cannot tell a proxy span from an instrumented one (the
proxy adds which backend served the call and the HTTP status). A W3C ``traceparent`` header on
the request makes the span a child of the caller's span; without one it is a root span of its
own trace, and the adapters' tree repair places it under the agent span that encloses it in time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agl_core import semconv
from agl_core.instrumentation.llm_record import request_attributes, response_attributes
from agl_core.proto.trace_pb2 import Span, SpanKind, SpanStatusCode
from agl_core.types import new_span
from agl_core.types.values import set_attributes

SCOPE_NAME = "agl.llm_proxy"
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def parse_traceparent(header: str | None) -> tuple[bytes, bytes] | None:
    """(trace id, parent span id) of a W3C ``traceparent`` header, or None if absent or malformed."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip().lower())
    if match is None or set(match.group(1)) == {"0"} or set(match.group(2)) == {"0"}:
        return None
    return bytes.fromhex(match.group(1)), bytes.fromhex(match.group(2))


@dataclass
class CallRecord:
    """What the proxy learns about one call while serving it.

    :ivar operation: ``chat`` or ``text_completion`` (:mod:`agl_core.semconv`).
    :ivar request: the request body as sent to the backend (None if it was not valid JSON).
    """

    rollout_id: str | None  # None: a call outside any rollout (counted in metrics, not recorded)
    attempt_id: str | None
    operation: str
    request: Mapping[str, Any] | None
    traceparent: str | None = None
    system: str = "openai"
    start_ns: int = field(default_factory=time.time_ns)
    backend: str | None = None
    api: str = "openai"  # the API the caller spoke; the bodies recorded are OpenAI's either way

    @property
    def recorded(self) -> bool:
        return bool(self.rollout_id and self.attempt_id)

    def to_span(
        self,
        *,
        response: Mapping[str, Any] | None = None,
        status_code: int | None = None,
        error: str | None = None,
    ) -> Span:
        """The finished call as a span (status ERROR with ``agl.llm.error`` when ``error`` is given)."""
        request = dict(self.request) if isinstance(self.request, Mapping) else {}
        model = request.get("model") if isinstance(request.get("model"), str) else ""
        endpoint = f"{self.backend}/v1" if self.backend else None
        attributes: dict[str, Any] = request_attributes(
            request, operation=self.operation, endpoint=endpoint, system=self.system
        )
        if self.backend:
            attributes[semconv.LLM_PROXY_BACKEND] = self.backend
        attributes[semconv.LLM_PROXY_API] = self.api
        if status_code is not None:
            attributes[semconv.HTTP_RESPONSE_STATUS_CODE] = status_code
        if response is not None:
            attributes.update(response_attributes(response))
        if error is not None:
            attributes[semconv.LLM_ERROR] = error
        parent = parse_traceparent(self.traceparent)
        if not self.recorded:
            raise ValueError("a call outside any rollout has no span")
        span = new_span(
            f"{self.operation} {model}".strip(),
            rollout_id=str(self.rollout_id),
            attempt_id=str(self.attempt_id),
            trace_id=parent[0] if parent else None,
            parent_span_id=parent[1] if parent else None,
            start_time_unix_nano=self.start_ns,
            end_time_unix_nano=time.time_ns(),
            kind=SpanKind.SPAN_KIND_CLIENT,
        )
        set_attributes(span, attributes)
        span.scope.name = SCOPE_NAME
        if error is not None:
            span.status.code = SpanStatusCode.SPAN_STATUS_CODE_ERROR
            span.status.message = error
        else:
            span.status.code = SpanStatusCode.SPAN_STATUS_CODE_OK
        return span


__all__ = ["SCOPE_NAME", "CallRecord", "parse_traceparent"]
