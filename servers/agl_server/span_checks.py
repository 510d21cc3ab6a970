"""Spans are checked at the edge so that whatever is acknowledged can be read back by every client.

The store keeps spans as the bytes that arrived and parses only their ids, so a span with, say, a
name that is not valid UTF-8 would be stored, and every later QuerySpans of its rollout would fail
in the client ("Exception deserializing response"), the good spans included. Here each span is
parsed exactly as a reader will parse it, inside a ``QuerySpansResponse``: valid UTF-8 in every
string field (name, attribute keys and values, events, resource, scope, ids), nesting within
protobuf's limit of 100 levels counted from the response. A span that fails is rejected alone
(``IngestSpansResponse.rejected``, INVALID_ARGUMENT) and the others are stored.

This is on the hot path of ingestion, so a batch is first checked as a whole: almost every batch
is all good, and per-span work in Python (a parse call, wrapping each span in a response, checking
its ids) cost about a third of the server's CPU per span. Where the extension is built, a compiled
walk of the batch's bytes (``agl_core.store.wire_check``) answers first: 5-6 us for a 10-span
batch where the protobuf runtime's parse took 16-27 (``bench/edge_check_bench.py``), most of it
building the token-id arrays' hundreds of messages only to drop them. It says yes only where the
parse would succeed; otherwise (or with ``AGL_EDGE_CHECK=parse``) the batch is parsed whole, in one
call into the protobuf runtime's C code. Only a batch that fails the whole-batch parse is checked
span by span, to say which spans fail and why. The ids and sequence ids of a good batch are checked
by the store itself, with the same :func:`~agl_core.store.validation.check_span` (it parses each
span's ids to place it anyway), so rejections carry the same messages either way.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from agl_core.errors import InvalidArgumentError
from agl_core.proto import store_pb2 as s
from agl_core.proto import trace_pb2
from agl_core.store import validation
from agl_core.store.wire import IngestSpansRequestView, repeated_message_field

try:  # built by setup.py where a C compiler is present; optional
    from agl_core.store.wire_check import WireCheck  # type: ignore[import-not-found]
except ImportError:
    WireCheck = None

_INVALID_ARGUMENT = 3
EDGE_CHECK_ENV = "AGL_EDGE_CHECK"
EDGE_CHECKS = ("wire", "parse")


def edge_check(name: str | None = None) -> str:
    """How whole batches are checked: ``wire`` (the compiled walk first, the default where it is
    built) or ``parse`` (the protobuf runtime only); None reads ``AGL_EDGE_CHECK``. ValueError says
    what to give instead."""
    given = "edge_check"
    if name is None and os.environ.get(EDGE_CHECK_ENV):
        name, given = os.environ[EDGE_CHECK_ENV], EDGE_CHECK_ENV
    if name is None:
        return "wire" if WireCheck is not None else "parse"
    if name not in EDGE_CHECKS:
        raise ValueError(f"{given}={name!r}: give 'wire' or 'parse' (how agl-server checks a batch of spans)")
    if name == "wire" and WireCheck is None:
        raise ValueError(
            f"{given}='wire': the compiled check (agl_core.store.wire_check) is not built in this install; "
            "reinstall agl with a C compiler present (pip install -e .), or give 'parse'"
        )
    return name


_REQUEST_WALK: Any = None
_SPAN_WALK: Any = None


def use_edge_check(name: str | None = None) -> str:
    """Check whole batches this way from now on, in this process (:func:`edge_check` reads
    ``name``); the name chosen. agl-server calls it at start; until then the default holds."""
    global _REQUEST_WALK, _SPAN_WALK
    name = edge_check(name)
    if name == "wire":
        _REQUEST_WALK, _SPAN_WALK = WireCheck(s.IngestSpansRequest.DESCRIPTOR), WireCheck(trace_pb2.Span.DESCRIPTOR)
    else:
        _REQUEST_WALK = _SPAN_WALK = None
    return name


def edge_check_in_use() -> str:
    return "wire" if _REQUEST_WALK is not None else "parse"


use_edge_check("wire" if WireCheck is not None else "parse")


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


def all_readable(raws: Sequence[bytes], whole: bytes | None = None) -> bool:
    """Whether every span parses the way readers parse it (see the module's docstring), at once.

    ``whole``: the IngestSpansRequest the spans arrived in, parsed as it is. Without it the spans
    are wrapped by the wire view of ``IngestSpansRequest`` (in C: no per-span Python) and parsed
    as ``IngestSpansRequest``. Either way each span is a ``Span`` one level down, as in a
    ``QuerySpansResponse``: the same UTF-8 checks and the same depth. (Wrapping costs ~2 us per
    1 KB span, parsing ~4 us: a third of the server's CPU per span, so the request's own bytes are
    used where there are some.)"""
    if _REQUEST_WALK is not None:
        if _REQUEST_WALK.check(whole) if whole is not None else _SPAN_WALK.check_each(raws):
            return True
    try:
        s.IngestSpansRequest.FromString(
            whole if whole is not None else IngestSpansRequestView(spans=raws).SerializeToString()
        )
    except Exception:
        return False
    return True


class ReceivedSpans:
    """An IngestSpansRequest as it arrived: its spans as bytes (the store keeps them as received)
    and the message's own bytes, which the edge check parses whole (span_checks) instead of
    serializing the spans again to parse them."""

    __slots__ = ("raw", "view")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.view = IngestSpansRequestView.FromString(raw)

    @property
    def spans(self) -> Any:
        return self.view.spans

    @property
    def batch_id(self) -> int:
        return self.view.batch_id  # type: ignore[no-any-return]


async def ingest_checked(
    raws: Sequence[bytes],
    store: Callable[[list[bytes], bytes | None], Awaitable[s.IngestSpansResponse]],
    *,
    whole: bytes | None = None,
) -> s.IngestSpansResponse:
    """Check each span, hand the good ones to ``store`` and answer for all, by their own indices.
    ``whole``: the serialized IngestSpansRequest that carried exactly these spans, if at hand;
    ``store`` gets it with the spans when they all go on (the store reads their ids from it)."""
    if all_readable(raws, whole):
        return await store(list(raws), whole)
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
        return await store(list(raws), None)
    stored = await store([raws[i] for i in good], None)
    response.accepted = stored.accepted
    response.duplicate_indices.extend(good[i] for i in stored.duplicate_indices)
    for error in stored.rejected:
        original = good[error.index]
        message = error.message.replace(f"spans[{error.index}]", f"spans[{original}]", 1)
        response.rejected.add(index=original, code=error.code, message=message)
    response.rejected.sort(key=lambda e: e.index)
    return response
