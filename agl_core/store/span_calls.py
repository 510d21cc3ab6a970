"""The span calls of :class:`~agl_core.store.base.LightningStore`: ingest, query, sequence ids."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from agl_core.errors import error_for_code
from agl_core.proto import store_pb2 as s
from agl_core.proto import trace_pb2
from agl_core.store.backend import StoreBackend
from agl_core.store.calls import _logic, _order
from agl_core.store.span_query import each_rollout
from agl_core.types.core import (
    IngestResult,
    Page,
)

if TYPE_CHECKING:
    pass


class SpanCalls:
    """Spans of rollouts (a part of :class:`~agl_core.store.base.LightningStore`)."""

    backend: StoreBackend
    namespace: str

    # --- spans -------------------------------------------------------------------------------------

    async def add_spans(self, spans: Sequence[trace_pb2.Span]) -> IngestResult:
        """Store spans (each with its rollout and attempt ids); returns once they are durable.

        A span whose id was already stored for its attempt is counted as a duplicate and ignored,
        so resending is safe. Spans that cannot be placed are reported in ``rejected``.
        """
        response = await self.backend.ingest_spans(spans)
        return IngestResult(
            accepted=response.accepted,
            duplicates=len(response.duplicate_indices),
            rejected=[(e.index, error_for_code(e.code, e.message)) for e in response.rejected],
        )

    async def add_span(self, span: trace_pb2.Span) -> IngestResult:
        """Store one span; raises if it was rejected."""
        result = await self.add_spans([span])
        if result.rejected:
            raise result.rejected[0][1]
        return result

    @staticmethod
    def _spans_request(
        rollout_id: str,
        attempt_id: str | None,
        *,
        after_sequence_id: int = 0,
        limit: int | None = None,
        offset: int = 0,
        trace_id: bytes | None = None,
        span_id: bytes | None = None,
        parent_span_id: bytes | None = None,
        name: str | None = None,
        name_contains: str | None = None,
        filter_logic: str = "and",
        sort_by: str | None = None,
        order: str = "asc",
    ) -> s.QuerySpansRequest:
        return s.QuerySpansRequest(
            rollout_id=rollout_id,
            attempt_id=attempt_id or "",
            after_sequence_id=after_sequence_id,
            limit=limit or 0,
            offset=offset,
            trace_id=trace_id or b"",
            span_id=span_id or b"",
            parent_span_id=parent_span_id or b"",
            name=name or "",
            name_contains=name_contains or "",
            filter_logic=_logic(filter_logic),
            sort_by=sort_by or "",
            order=_order(order),
        )

    async def iter_spans(
        self,
        rollout_id: str,
        attempt_id: str | None = None,
        *,
        after_sequence_id: int = 0,
        limit: int | None = None,
        offset: int = 0,
        trace_id: bytes | None = None,
        span_id: bytes | None = None,
        parent_span_id: bytes | None = None,
        name: str | None = None,
        name_contains: str | None = None,
        filter_logic: str = "and",
        sort_by: str | None = None,
        order: str = "asc",
    ) -> AsyncIterator[trace_pb2.Span]:
        """Stream the spans of a rollout (``attempt_id``: an id, ``"latest"``, or ``None`` for all).

        An attempt that does not exist (or ``"latest"`` before the first attempt) has no spans.
        ``after_sequence_id`` tails; ``limit`` and ``offset`` page; the filters ``trace_id``,
        ``span_id``, ``parent_span_id`` (exact bytes), ``name`` and ``name_contains`` combine by
        ``filter_logic`` (``"and"`` or ``"or"``). ``sort_by``: ``sequence_id`` (default: attempt,
        then sequence id), ``start_time``, ``end_time`` or ``name``; ``order``: asc or desc.
        """
        request = self._spans_request(
            rollout_id,
            attempt_id,
            after_sequence_id=after_sequence_id,
            limit=limit,
            offset=offset,
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent_span_id,
            name=name,
            name_contains=name_contains,
            filter_logic=filter_logic,
            sort_by=sort_by,
            order=order,
        )
        async for chunk in self.backend.query_spans(request):
            for span in chunk.spans:
                yield span

    async def query_spans(
        self,
        rollout_id: str,
        attempt_id: str | None = None,
        *,
        after_sequence_id: int = 0,
        limit: int | None = None,
        offset: int = 0,
        trace_id: bytes | None = None,
        span_id: bytes | None = None,
        parent_span_id: bytes | None = None,
        name: str | None = None,
        name_contains: str | None = None,
        filter_logic: str = "and",
        sort_by: str | None = None,
        order: str = "asc",
    ) -> list[trace_pb2.Span]:
        """The spans of a rollout as a list (see :meth:`iter_spans` for the arguments)."""
        spans = self.iter_spans(
            rollout_id,
            attempt_id,
            after_sequence_id=after_sequence_id,
            limit=limit,
            offset=offset,
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent_span_id,
            name=name,
            name_contains=name_contains,
            filter_logic=filter_logic,
            sort_by=sort_by,
            order=order,
        )
        return [span async for span in spans]

    async def query_spans_of_rollouts(
        self,
        rollout_ids: Sequence[str],
        attempt_id: str | None = None,
        *,
        trace_id: bytes | None = None,
        span_id: bytes | None = None,
        parent_span_id: bytes | None = None,
        name: str | None = None,
        name_contains: str | None = None,
        filter_logic: str = "and",
        sort_by: str | None = None,
        order: str = "asc",
    ) -> dict[str, list[trace_pb2.Span]]:
        """The spans of several rollouts in one query (one call to agl-server): rollout id -> its
        spans, with every id given as a key (an empty list when it has none), in the order given.

        What an algorithm reads when a batch of rollouts has finished (``attempt_id="latest"``: the
        attempts that finished them). The arguments apply to each rollout as in :meth:`iter_spans`;
        at most 1,000 ids, none twice; an id that names no rollout raises ``NotFoundError``.
        """
        request = self._spans_request(
            "",
            attempt_id,
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent_span_id,
            name=name,
            name_contains=name_contains,
            filter_logic=filter_logic,
            sort_by=sort_by,
            order=order,
        )
        request.rollout_ids.extend(rollout_ids)
        spans: dict[str, list[trace_pb2.Span]] = {rollout_id: [] for rollout_id in rollout_ids}
        if not spans:
            return spans
        # agl-server runs the per-rollout queries itself (one round trip); an in-process backend
        # answers one rollout at a time.
        chunks = (
            self.backend.query_spans(request)
            if getattr(self.backend, "queries_many_rollouts", False)
            else each_rollout(self.backend.query_spans, request)
        )
        async for chunk in chunks:
            for span in chunk.spans:
                spans.setdefault(span.rollout_id, []).append(span)
        return spans

    async def query_spans_page(
        self,
        rollout_id: str,
        attempt_id: str | None = None,
        *,
        after_sequence_id: int = 0,
        limit: int | None = None,
        offset: int = 0,
        trace_id: bytes | None = None,
        span_id: bytes | None = None,
        parent_span_id: bytes | None = None,
        name: str | None = None,
        name_contains: str | None = None,
        filter_logic: str = "and",
        sort_by: str | None = None,
        order: str = "asc",
    ) -> Page[trace_pb2.Span]:
        """A page of spans with ``total``, the number of matches ignoring ``limit`` and ``offset``
        (see :meth:`iter_spans` for the arguments)."""
        request = self._spans_request(
            rollout_id,
            attempt_id,
            after_sequence_id=after_sequence_id,
            limit=limit,
            offset=offset,
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent_span_id,
            name=name,
            name_contains=name_contains,
            filter_logic=filter_logic,
            sort_by=sort_by,
            order=order,
        )
        request.include_total = True
        spans: list[trace_pb2.Span] = []
        total = 0
        async for chunk in self.backend.query_spans(request):
            spans.extend(chunk.spans)
            if chunk.HasField("total"):
                total = chunk.total
        return Page(spans, total, request.limit, request.offset)

    async def next_sequence_ids(self, rollout_id: str, count: int = 1) -> range:
        """Reserve ``count`` span sequence ids of a rollout."""
        response = await self.backend.next_sequence_ids(s.NextSequenceIdsRequest(rollout_id=rollout_id, count=count))
        return range(response.first, response.first + response.count)

    async def get_next_span_sequence_id(self, rollout_id: str, attempt_id: str | None = None) -> int:
        """One sequence id (the original API's name)."""
        return (await self.next_sequence_ids(rollout_id, 1)).start
