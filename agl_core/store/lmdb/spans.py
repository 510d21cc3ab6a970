"""Spans: group-committed ingestion with de-duplication, chunked reads, sequence ids."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from agl_core.errors import InvalidArgumentError, NotFoundError
from agl_core.proto import store_pb2 as s
from agl_core.proto import trace_pb2
from agl_core.proto import types_pb2 as t
from agl_core.store import validation
from agl_core.store.lmdb.core import LmdbCore
from agl_core.store.lmdb.records import RolloutRecord, Tx
from agl_core.store.lmdb.schema import (
    U64,
    next_counter,
    read_counter,
    span_key,
)
from agl_core.store.wire import SpanHeader, with_sequence_id

SPANS_PER_CHUNK = 256
SPAN_BYTES_PER_CHUNK = 1 << 20


class SpansMixin(LmdbCore):
    """Ingest and read spans; reserve sequence ids."""

    async def ingest_spans(self, spans: Sequence[trace_pb2.Span]) -> s.IngestSpansResponse:
        """Store a batch of spans; answers once they are durable. Never raises for a bad span:
        each one that cannot be placed is reported in ``rejected``."""
        return await self.ingest_span_bytes([span.SerializeToString() for span in spans])

    async def ingest_span_bytes(self, raws: Sequence[bytes]) -> s.IngestSpansResponse:
        """:meth:`ingest_spans` for serialized spans: each is stored as received (see ``wire``)."""
        response = s.IngestSpansResponse()
        valid: list[tuple[int, Any, bytes]] = []
        parse = SpanHeader.FromString
        well_formed = validation.span_ids_well_formed
        for i, raw in enumerate(raws):
            try:
                header = parse(raw)
            except Exception as exc:
                message = f"spans[{i}] could not be decoded as agl.v1.Span ({exc})"
                response.rejected.add(index=i, code=3, message=message)
                continue
            if not well_formed(header):
                try:
                    validation.check_span(header, f"spans[{i}]")
                except InvalidArgumentError as exc:
                    response.rejected.add(index=i, code=3, message=str(exc))
                    continue
            valid.append((i, header, raw))
        if valid:
            accepted, duplicates, rejected = await self._write(lambda tx: self._ingest_op(tx, valid))
            response.accepted = accepted
            response.duplicate_indices.extend(duplicates)
            for i, code, message in rejected:
                response.rejected.add(index=i, code=code, message=message)
            response.rejected.sort(key=lambda e: e.index)
        return response

    def _ingest_op(
        self, tx: Tx, spans: list[tuple[int, Any, bytes]]
    ) -> tuple[int, list[int], list[tuple[int, int, str]]]:
        dbs = self.dbs
        txn = tx.txn
        accepted = 0
        duplicates: list[int] = []
        rejected: list[tuple[int, int, str]] = []
        targets: dict[tuple[str, str], tuple[RolloutRecord, t.Attempt] | str] = {}
        counters: dict[int, int] = {}
        touched: dict[tuple[str, str], tuple[RolloutRecord, t.Attempt]] = {}
        for i, header, raw in spans:
            coords = (header.rollout_id, header.attempt_id)
            target = targets.get(coords)
            if target is None:
                record = tx.find_rollout(header.rollout_id)
                if record is None:
                    target = f"rollout {header.rollout_id!r} not found"
                else:
                    try:
                        target = (record, tx.find_attempt(record, header.attempt_id))
                    except NotFoundError as exc:
                        target = str(exc)
                targets[coords] = target
            if isinstance(target, str):
                rejected.append((i, 5, f"spans[{i}]: {target}"))
                continue
            record, attempt = target
            num, seq = record.num, attempt.sequence_id
            span_id = header.span_id
            if not self._span_ids.add_if_new(txn, dbs.span_id_log, num, seq, span_id):
                duplicates.append(i)
                continue
            last = counters.get(num)
            if last is None:
                last = read_counter(txn, dbs.span_seqs, U64.pack(num))
            sequence_id = header.sequence_id
            if sequence_id == 0:
                last += 1
                sequence_id = last
                raw = with_sequence_id(raw, sequence_id)
            elif sequence_id > last:
                last = sequence_id
            counters[num] = last
            txn.put(span_key(num, seq, sequence_id, span_id), raw, db=dbs.spans)
            touched[coords] = target
            accepted += 1
        self._span_ids.flush(txn, dbs.span_id_log)
        for num, last in counters.items():
            txn.put(U64.pack(num), U64.pack(last), db=dbs.span_seqs)
        for record, attempt in touched.values():
            tx.heartbeat(record, attempt)
        tx.effects.spans += accepted  # type: ignore[union-attr]
        return accepted, duplicates, rejected

    async def query_spans(self, request: s.QuerySpansRequest) -> AsyncIterator[s.QuerySpansResponse]:
        """Stream the spans of a rollout in chunks; each chunk is read in its own short transaction."""
        async for chunk in self.query_span_bytes(request):
            response = s.QuerySpansResponse()
            response.spans.extend(trace_pb2.Span.FromString(raw) for raw in chunk)
            yield response

    async def query_span_bytes(self, request: s.QuerySpansRequest) -> AsyncIterator[list[bytes]]:
        """Like :meth:`query_spans`, but yields the stored bytes of each span, unparsed."""
        rollout_id = validation.require_id(request.rollout_id, "rollout_id")
        if request.limit < 0 or request.after_sequence_id < 0:
            raise InvalidArgumentError("limit and after_sequence_id must not be negative")
        with self._begin() as txn:
            tx = Tx(txn, self.dbs)
            record = tx.rollout(rollout_id)
            if request.attempt_id:
                prefix = U64.pack(record.num) + tx.find_attempt(record, request.attempt_id).sequence_id.to_bytes(
                    4, "big"
                )
            else:
                prefix = U64.pack(record.num)
        after = request.after_sequence_id
        remaining = request.limit or None
        position = prefix
        while remaining is None or remaining > 0:
            chunk: list[bytes] = []
            size = 0
            with self._begin() as txn:
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
                    value = cursor.value()
                    chunk.append(value)
                    size += len(value)
                    if (
                        len(chunk) >= SPANS_PER_CHUNK
                        or size >= SPAN_BYTES_PER_CHUNK
                        or (remaining is not None and len(chunk) >= remaining)
                    ):
                        break
                    found = cursor.next()
            if chunk:
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
            if not found:
                return
            await asyncio.sleep(0)  # let other calls run between chunks of a long query

    async def next_sequence_ids(self, request: s.NextSequenceIdsRequest) -> s.NextSequenceIdsResponse:
        rollout_id = validation.require_id(request.rollout_id, "rollout_id")
        if request.count < 0 or request.count > 1_000_000:
            raise InvalidArgumentError(f"count is {request.count}; reserve between 1 and 1000000 ids at once")
        count = request.count or 1

        def op(tx: Tx) -> s.NextSequenceIdsResponse:
            record = tx.rollout(rollout_id)
            first = next_counter(tx.txn, self.dbs.span_seqs, U64.pack(record.num), count)
            return s.NextSequenceIdsResponse(first=first, count=count)

        return await self._write(op)
