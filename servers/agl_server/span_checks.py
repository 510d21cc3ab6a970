"""Spans are checked at the edge so that whatever is acknowledged can be read back by every client.

The store keeps spans as the bytes that arrived and parses only their ids, so a span with, say, a
name that is not valid UTF-8 would be stored, and every later QuerySpans of its rollout would fail
in the client ("Exception deserializing response"), the good spans included. Here each span is
parsed exactly as a reader will parse it, inside a ``QuerySpansResponse``: valid UTF-8 in every
string field (name, attribute keys and values, events, resource, scope, ids), nesting within
protobuf's limit of 100 levels counted from the response. A span that fails is rejected alone
(``IngestSpansResponse.rejected``, INVALID_ARGUMENT) and the others are stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from agl_core.errors import InvalidArgumentError
from agl_core.proto import store_pb2 as s
from agl_core.store import validation
from agl_core.store.wire import repeated_message_field

_INVALID_ARGUMENT = 3


def span_problem(raw: bytes, where: str) -> str | None:
    """Why the serialized span ``raw`` must not be stored, or None when it may be."""
    try:
        span = s.QuerySpansResponse.FromString(repeated_message_field(1, [raw])).spans[0]
    except Exception as exc:
        return (
            f"{where} could not be decoded as agl.v1.Span the way readers decode it ({exc}); string fields "
            "(name, attribute keys and values, event names, resource, ids) must be valid UTF-8 and values must "
            "nest less than 100 levels deep"
        )
    try:
        validation.check_span(span, where)
    except InvalidArgumentError as exc:
        return exc.message
    return None


async def ingest_checked(
    raws: Sequence[bytes], store: Callable[[list[bytes]], Awaitable[s.IngestSpansResponse]]
) -> s.IngestSpansResponse:
    """Check each span, hand the good ones to ``store`` and answer for all, by their own indices."""
    response = s.IngestSpansResponse()
    good: list[int] = []
    for i, raw in enumerate(raws):
        problem = span_problem(raw, f"spans[{i}]")
        if problem is None:
            good.append(i)
        else:
            response.rejected.add(index=i, code=_INVALID_ARGUMENT, message=problem)
    if not good:
        return response
    if len(good) == len(raws):
        return await store(list(raws))
    stored = await store([raws[i] for i in good])
    response.accepted = stored.accepted
    response.duplicate_indices.extend(good[i] for i in stored.duplicate_indices)
    for error in stored.rejected:
        original = good[error.index]
        message = error.message.replace(f"spans[{error.index}]", f"spans[{original}]", 1)
        response.rejected.add(index=original, code=error.code, message=message)
    response.rejected.sort(key=lambda e: e.index)
    return response
