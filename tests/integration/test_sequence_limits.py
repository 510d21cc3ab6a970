"""Assigned sequence ids never wrap past 2^63-1: NextSequenceIds and span ingestion say so precisely
(FAILED_PRECONDITION) instead of INTERNAL or a negative id.

Clients may set sequence ids only up to 2^53-1 (the edge refuses more), so the counter is planted
near the end by hand, as a store written by an older release or a very long run could hold it."""

from __future__ import annotations

import grpc
import pytest
from support.store_surgery import surgery

from agl_core import new_span
from agl_core.client import GrpcStore
from agl_core.proto import store_pb2 as s
from agl_core.proto import store_pb2_grpc
from agl_core.store.lmdb.schema import U64
from agl_server.process import ServerProcess

MAX = (1 << 63) - 1


async def test_sequence_ids_end_at_the_largest_int64(server: ServerProcess, data_dir) -> None:  # type: ignore[no-untyped-def]
    async with GrpcStore(server.address) as store:
        rollout = await store.start_rollout("seq")
        attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
    server.stop()
    with surgery(data_dir) as tx:
        tx.txn.put(U64.pack(tx.rollout(rollout.rollout_id).num), U64.pack(MAX - 10), db=tx.dbs.span_seqs)
    server.restart()
    async with GrpcStore(server.address) as store, grpc.aio.insecure_channel(server.address) as channel:
        stub = store_pb2_grpc.LightningStoreServiceStub(channel)

        def span(name: str, sequence_id: int = 0):  # type: ignore[no-untyped-def]
            return new_span(name, rollout_id=rollout.rollout_id, attempt_id=attempt_id, sequence_id=sequence_id)

        reserved = await stub.NextSequenceIds(s.NextSequenceIdsRequest(rollout_id=rollout.rollout_id, count=9))
        assert (reserved.first, reserved.count) == (MAX - 9, 9)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.NextSequenceIds(s.NextSequenceIdsRequest(rollout_id=rollout.rollout_id, count=2))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "end at 9223372036854775807" in (info.value.details() or "") and "1 are left" in (
            info.value.details() or ""
        )

        last = await store.add_spans([span("the-last-one")])  # takes MAX itself
        assert last.accepted == 1
        late = span("one-too-many")
        result = await store.add_spans([late, span("chosen", 5)])
        assert result.accepted == 1 and [i for i, _ in result.rejected] == [0]
        assert result.rejected[0][1].code == grpc.StatusCode.FAILED_PRECONDITION
        assert "start a new rollout" in str(result.rejected[0][1])
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.NextSequenceIds(s.NextSequenceIdsRequest(rollout_id=rollout.rollout_id))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        # The refused span was not recorded as seen: with an id of its own it is stored.
        late.sequence_id = 7
        assert (await store.add_spans([late])).accepted == 1

        stored = {sp.name: sp.sequence_id for sp in await store.query_spans(rollout.rollout_id)}
        assert stored == {"chosen": 5, "one-too-many": 7, "the-last-one": MAX}
