"""Spans: group-committed ingestion with de-duplication, chunked reads, sequence ids."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from agl_core.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from agl_core.proto import store_pb2 as s
from agl_core.proto import trace_pb2
from agl_core.store import filters, validation
from agl_core.store.lmdb import span_write
from agl_core.store.lmdb.core import LmdbCore
from agl_core.store.lmdb.records import Tx
from agl_core.store.lmdb.schema import (
    U64,
    next_counter,
    read_counter,
)
from agl_core.store.lmdb.span_chunks import ChunkReader
from agl_core.store.lmdb.span_resources import ResourceReader
from agl_core.store.lmdb.span_write import MAX_SEQUENCE_ID, exhausted
from agl_core.store.wire import SpanHeader, span_headers

SPANS_PER_CHUNK = 256
SPAN_BYTES_PER_CHUNK = 1 << 20


class PendingSpans:
    """A batch of spans handed to the store: its answer so far (the spans rejected before the
    write) and the write of the others (None when there are none)."""

    __slots__ = ("response", "write")

    def __init__(self, response: s.IngestSpansResponse, write: asyncio.Future[Any] | None) -> None:
        self.response = response
        self.write = write

    def answer(self) -> s.IngestSpansResponse:
        """The batch's answer, once ``write`` is done; raises what the write raised."""
        if self.write is not None:
            return complete_answer(self.response, self.write.result())
        return self.response


def complete_answer(
    response: s.IngestSpansResponse, result: tuple[int, list[int], list[tuple[int, int, str]]]
) -> s.IngestSpansResponse:
    """``response`` (the spans rejected before the write) completed with the span write's result:
    how many it accepted, which were duplicates and which it rejected."""
    accepted, duplicates, rejected = result
    response.accepted = accepted
    response.duplicate_indices.extend(duplicates)
    if rejected:
        for i, code, message in rejected:
            response.rejected.add(index=i, code=code, message=message)
        response.rejected.sort(key=lambda e: e.index)
    return response


def placeable_spans(
    raws: Sequence[bytes], whole: bytes | None
) -> tuple[s.IngestSpansResponse, list[tuple[int, Any, bytes]]]:
    """The spans of a batch the writer can place, as (index, header, bytes), and an answer holding
    those it cannot (ids malformed, or not a span at all)."""
    response = s.IngestSpansResponse()
    if whole is not None:
        # Read from the request's bytes in C: no parse of the headers, and the span loop reads
        # plain attributes instead of making an object at each read of a parsed header's field.
        places = validation.batch_span_places(whole)
        if places is not None:
            return response, list(zip(range(len(raws)), places, raws, strict=True))
    headers = span_headers(raws, whole)
    if headers is not None and whole is not None and validation.batch_span_ids_well_formed(whole):
        return response, list(zip(range(len(raws)), headers, raws, strict=True))  # no Python per header
    return response, _placeable_one_by_one(raws, headers, response)


def _placeable_one_by_one(
    raws: Sequence[bytes], headers: Sequence[Any] | None, response: s.IngestSpansResponse
) -> list[tuple[int, Any, bytes]]:
    """(index, header, bytes) of the spans whose ids can be placed, each header parsed (unless
    ``headers`` has them) and checked in Python; the others are added to ``response.rejected``."""
    valid: list[tuple[int, Any, bytes]] = []
    for i, raw in enumerate(raws):
        if headers is not None:
            header = headers[i]
        else:
            try:
                header = SpanHeader.FromString(raw)
            except Exception as exc:
                message = f"spans[{i}] could not be decoded as agl.v1.Span ({exc})"
                response.rejected.add(index=i, code=span_write.INVALID_ARGUMENT, message=message)
                continue
        if not validation.span_ids_well_formed(header):
            try:
                validation.check_span(header, f"spans[{i}]")
            except InvalidArgumentError as exc:
                response.rejected.add(index=i, code=span_write.INVALID_ARGUMENT, message=str(exc))
                continue
        valid.append((i, header, raw))
    return valid


class SpansMixin(LmdbCore):
    """Ingest and read spans; reserve sequence ids."""

    async def ingest_spans(self, spans: Sequence[trace_pb2.Span]) -> s.IngestSpansResponse:
        """Store a batch of spans; answers once they are durable. Never raises for a bad span:
        each one that cannot be placed is reported in ``rejected``."""
        return await self.ingest_span_bytes([span.SerializeToString() for span in spans])

    async def ingest_span_bytes(self, raws: Sequence[bytes], whole: bytes | None = None) -> s.IngestSpansResponse:
        """:meth:`ingest_spans` for serialized spans: each is stored as received (see ``wire``).
        ``whole``: the serialized IngestSpansRequest that carried exactly ``raws``, when at hand."""
        pending = self.submit_span_bytes(raws, whole)
        if pending.write is not None:
            await pending.write
        return pending.answer()

    def submit_span_bytes(
        self, raws: Sequence[bytes], whole: bytes | None = None, source: object = None
    ) -> PendingSpans:
        """:meth:`ingest_span_bytes` without the coroutine: checks the spans' ids and hands the good
        ones to the writer at once. For agl-server's IngestSpans, which awaits ``write`` itself:
        a coroutine (or task) per batch between it and the writer cost the event loop a hop and a
        task per batch. Call it on the event loop thread.

        :param source: the stream's token while it has no other batch in flight: a lone stream's
            batch may then commit before this returns (``Writer.submit``)."""
        response, valid = placeable_spans(raws, whole)
        write = self._write(lambda tx: self._ingest_op(tx, valid), source) if valid else None
        return PendingSpans(response, write)

    def _ingest_op(
        self, tx: Tx, spans: list[tuple[int, Any, bytes]]
    ) -> tuple[int, list[int], list[tuple[int, int, str]]]:
        return self._span_ingest(tx, spans, self._span_ids, self._chunk_numbers, self.page_size)

    async def query_spans(self, request: s.QuerySpansRequest) -> AsyncIterator[s.QuerySpansResponse]:
        """Stream the spans of a rollout in chunks; each chunk is read in its own short transaction.

        With ``include_total`` the last response carries the number of matching spans (it may
        hold no spans)."""
        total: list[int] = []
        async for chunk in self._span_chunks(request, total):
            response = s.QuerySpansResponse()
            response.spans.extend(trace_pb2.Span.FromString(raw) for raw in chunk)
            yield response
        if request.include_total:
            yield s.QuerySpansResponse(total=total[0] if total else 0)

    async def query_span_bytes(self, request: s.QuerySpansRequest) -> AsyncIterator[list[bytes]]:
        """Like :meth:`query_spans`, but yields the stored bytes of each span, unparsed (and no total)."""
        async for chunk in self._span_chunks(request, []):
            yield chunk

    async def _span_chunks(self, request: s.QuerySpansRequest, total: list[int]) -> AsyncIterator[list[bytes]]:
        """The matching spans in chunks; appends their number to ``total`` when it is known."""
        rollout_id = validation.require_id(request.rollout_id, "rollout_id")
        if request.limit < 0 or request.after_sequence_id < 0 or request.offset < 0:
            raise InvalidArgumentError("limit, offset and after_sequence_id must not be negative")
        sort_by = validation.sort_field(request.sort_by, ("sequence_id", "start_time", "end_time", "name"))
        desc = validation.descending(request.order)
        matches = _span_filter(request)
        with self._begin() as txn:
            tx = Tx(txn, self.dbs)
            record = tx.rollout(rollout_id)
            prefix = U64.pack(record.num)
            if request.attempt_id:
                try:
                    attempt = tx.find_attempt(record, request.attempt_id)
                except NotFoundError:
                    # No such attempt of this rollout (or none yet for "latest"): it has no spans.
                    total.append(0)
                    return
                prefix += attempt.sequence_id.to_bytes(4, "big")
        after = request.after_sequence_id
        if sort_by != "sequence_id" or desc:
            async for chunk in self._sorted_spans(prefix, after, matches, sort_by, desc, request, total):
                yield chunk
            return
        remaining = request.limit or None
        skip = request.offset
        counted = 0
        chunk: list[bytes] = []
        size = 0
        async for batch in self._scan(prefix, after):
            for raw in batch:
                if matches is not None and not matches(trace_pb2.Span.FromString(raw)):
                    continue
                counted += 1
                if skip:
                    skip -= 1
                    continue
                if remaining is not None and remaining <= 0:
                    continue  # only counting now
                chunk.append(raw)
                size += len(raw)
                if remaining is not None:
                    remaining -= 1
                if len(chunk) >= SPANS_PER_CHUNK or size >= SPAN_BYTES_PER_CHUNK:
                    yield chunk
                    chunk, size = [], 0
            if remaining is not None and remaining <= 0 and not request.include_total:
                break
        if chunk:
            yield chunk
        total.append(counted)

    async def _sorted_spans(
        self,
        prefix: bytes,
        after: int,
        matches: Callable[[trace_pb2.Span], bool] | None,
        sort_by: str,
        desc: bool,
        request: s.QuerySpansRequest,
        total: list[int],
    ) -> AsyncIterator[list[bytes]]:
        """Spans in another order than the stored one: every match is read (keys and sort keys
        kept), sorted, and the page streamed."""
        keyed: list[tuple[Any, int, bytes]] = []
        position = 0
        async for batch in self._scan(prefix, after):
            for raw in batch:
                position += 1
                if sort_by == "sequence_id" and matches is None:
                    keyed.append((position, position, raw))
                    continue
                span = trace_pb2.Span.FromString(raw)
                if matches is not None and not matches(span):
                    continue
                key: Any = position
                if sort_by == "start_time":
                    key = span.start_time_unix_nano
                elif sort_by == "end_time":
                    key = span.end_time_unix_nano
                elif sort_by == "name":
                    key = span.name
                keyed.append((key, position, raw))
        keyed.sort(key=lambda item: (item[0], item[1]), reverse=desc)
        total.append(len(keyed))
        end = request.offset + request.limit if request.limit else None
        page = [raw for _, _, raw in keyed[request.offset : end]]
        for i in range(0, len(page), SPANS_PER_CHUNK):
            yield page[i : i + SPANS_PER_CHUNK]

    async def _scan(self, prefix: bytes, after: int) -> AsyncIterator[list[bytes]]:
        """The stored spans under ``prefix`` with a sequence id above ``after``, in key order, in
        batches each read in its own short transaction (other calls run in between)."""
        position = prefix
        while True:
            batch: list[bytes] = []
            size = 0
            with self._begin() as txn:
                restore = ResourceReader(txn, self.dbs.span_resources).span_bytes
                unpack = ChunkReader(txn, self.dbs.span_chunks).span
                cursor = txn.cursor(db=self.dbs.spans)
                found = cursor.set_range(position)
                while found:
                    key = cursor.key()
                    if not key.startswith(prefix):
                        found = False
                        break
                    position = key + b"\x00"
                    if after and int.from_bytes(key[12:20], "big") <= after:
                        # Seek past the attempt's spans up to ``after`` rather than step through them.
                        position = key[:12] + U64.pack(after + 1)
                        found = cursor.set_range(position)
                        continue
                    packed = unpack(cursor.value())
                    if packed is None:  # its rollout is being deleted
                        found = cursor.next()
                        continue
                    value = restore(packed)
                    batch.append(value)
                    size += len(value)
                    if len(batch) >= SPANS_PER_CHUNK or size >= SPAN_BYTES_PER_CHUNK:
                        break
                    found = cursor.next()
            if batch:
                yield batch
            if not found:
                return
            await asyncio.sleep(0)  # let other calls run between batches of a long query

    async def next_sequence_ids(self, request: s.NextSequenceIdsRequest) -> s.NextSequenceIdsResponse:
        rollout_id = validation.require_id(request.rollout_id, "rollout_id")
        if request.count < 0 or request.count > 1_000_000:
            raise InvalidArgumentError(f"count is {request.count}; reserve between 1 and 1000000 ids at once")
        count = request.count or 1

        def op(tx: Tx) -> s.NextSequenceIdsResponse:
            record = tx.rollout(rollout_id)
            last = read_counter(tx.txn, self.dbs.span_seqs, U64.pack(record.num))
            if last + count > MAX_SEQUENCE_ID:
                raise FailedPreconditionError(
                    f"{exhausted(rollout_id, last)}; {max(0, MAX_SEQUENCE_ID - last)} are left, {count} were asked for"
                )
            first = next_counter(tx.txn, self.dbs.span_seqs, U64.pack(record.num), count)
            return s.NextSequenceIdsResponse(first=first, count=count)

        return await self._write(op)


def _span_filter(request: s.QuerySpansRequest) -> Callable[[trace_pb2.Span], bool] | None:
    """The predicate of the span filters the request sets, or None when it sets none."""
    predicates: list[Callable[[trace_pb2.Span], bool]] = []
    for field in ("trace_id", "span_id", "parent_span_id", "name"):
        wanted = getattr(request, field)
        if wanted:
            predicates.append(lambda span, field=field, wanted=wanted: getattr(span, field) == wanted)
    if request.name_contains:
        predicates.append(lambda span: request.name_contains in span.name)
    filters.is_or(request.filter_logic)  # rejects an unknown value even without filters
    return filters.combine(predicates, request.filter_logic) if predicates else None
