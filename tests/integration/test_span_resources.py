"""A span's OTLP resource is stored once per content, not once per span, and spans read back as
they were sent: through OTLP Export, the native stream, and from a data directory written before
resources were shared."""

from __future__ import annotations

from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from support.store_surgery import surgery

from agl_core import new_span, semconv
from agl_core.client import GrpcStore
from agl_core.proto import trace_pb2
from agl_core.store.lmdb.schema import SCHEMA_VERSION, U32, U64, MetaKey, span_key
from agl_core.types import span_attributes
from agl_server.process import ServerProcess

SPANS = 1000
RESOURCE_BYTES = 20_000


async def test_otlp_resource_is_stored_once(server: ServerProcess) -> None:
    async with GrpcStore(server.address) as store:
        rollout = await store.start_rollout("otlp")
        request = trace_service_pb2.ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource = resource_spans.resource
        resource.attributes.add(key=semconv.ROLLOUT_ID, value=common_pb2.AnyValue(string_value=rollout.rollout_id))
        resource.attributes.add(key="host.description", value=common_pb2.AnyValue(string_value="h" * RESOURCE_BYTES))
        scope_spans = resource_spans.scope_spans.add()
        for i in range(SPANS):
            scope_spans.spans.add(
                trace_id=bytes(range(1, 17)), span_id=(i + 1).to_bytes(8, "big"), name=f"s{i}", start_time_unix_nano=i
            )
        before = await store.stats()
        with grpc.insecure_channel(server.address) as channel:
            response = trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=60)
        assert not response.HasField("partial_success")
        after = await store.stats()
        assert after["spans"] - before["spans"] == SPANS
        # A copy per span would be SPANS * RESOURCE_BYTES = 20 MB.
        growth = after["data_bytes"] - before["data_bytes"]
        assert growth < SPANS * RESOURCE_BYTES / 10, growth

        spans = await store.query_spans(rollout.rollout_id)
        assert [sp.name for sp in spans] == [f"s{i}" for i in range(SPANS)]
        for sp in spans:
            assert span_attributes(sp.resource)["host.description"] == "h" * RESOURCE_BYTES


async def test_native_spans_read_back_unchanged(server: ServerProcess) -> None:
    async with GrpcStore(server.address) as store:
        rollout = await store.start_rollout("native")
        attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
        sent = []
        for i in range(6):
            span = new_span(f"n{i}", rollout_id=rollout.rollout_id, attempt_id=attempt_id, attributes={"i": i})
            if i % 3:  # two resources shared among four spans; two spans without any
                span.resource.attributes.add(key="service.name").value.string_value = f"svc-{i % 3}"
                span.resource.dropped_attributes_count = i % 3
            sent.append(span)
        assert (await store.add_spans(sent)).accepted == len(sent)
        back = await store.query_spans(rollout.rollout_id)
        for original, stored in zip(sent, back, strict=True):
            original.sequence_id = stored.sequence_id  # assigned by the store
            assert stored == original


async def test_spans_stored_before_sharing_still_read(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, log_path=tmp_path / "server.log").start()
    try:
        async with GrpcStore(server.address) as store:
            rollout = await store.start_rollout("old")
        server.stop()
        old = new_span("old-format", rollout_id=rollout.rollout_id, attempt_id=rollout.attempt.attempt_id)  # type: ignore[union-attr]
        old.resource.attributes.add(key="service.name").value.string_value = "from-v2"
        old.sequence_id = 1
        with surgery(data) as tx:  # as the previous release stored it: the span as received
            record = tx.rollout(rollout.rollout_id)
            tx.txn.put(span_key(record.num, 1, 1, old.span_id), old.SerializeToString(), db=tx.dbs.spans)
            tx.txn.put(MetaKey.SCHEMA_VERSION, U32.pack(2), db=tx.dbs.meta)
        server.restart()  # upgrades the directory in place
        async with GrpcStore(server.address) as store:
            [back] = await store.query_spans(rollout.rollout_id)
            assert back == old
            assert isinstance(back, trace_pb2.Span)
    finally:
        server.stop()


async def test_spans_stored_whole_by_schema_3_read_beside_packed_ones(tmp_path: Path) -> None:
    """Schema 4 packs spans into chunks; a data directory of schema 3 (each span stored whole) is
    upgraded in place and its spans read beside the ones stored after."""
    data = tmp_path / "data"
    server = ServerProcess(data, log_path=tmp_path / "server.log").start()
    try:
        async with GrpcStore(server.address) as store:
            rollout = await store.start_rollout("old")
        attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
        server.stop()
        old = new_span("stored-whole", rollout_id=rollout.rollout_id, attempt_id=attempt_id)
        old.sequence_id = 1
        with surgery(data) as tx:
            record = tx.rollout(rollout.rollout_id)
            tx.txn.put(span_key(record.num, 1, 1, old.span_id), old.SerializeToString(), db=tx.dbs.spans)
            tx.txn.put(U64.pack(record.num), U64.pack(1), db=tx.dbs.span_seqs)  # the last sequence id issued
            tx.txn.put(MetaKey.SCHEMA_VERSION, U32.pack(3), db=tx.dbs.meta)
        server.restart()
        async with GrpcStore(server.address) as store:
            packed = new_span(
                "packed", rollout_id=rollout.rollout_id, attempt_id=attempt_id, attributes={"p": "x" * 1000}
            )
            await store.add_spans([packed])  # over 700 bytes: stored in a span chunk
            assert [(span.name, span.sequence_id) for span in await store.query_spans(rollout.rollout_id)] == [
                ("stored-whole", 1),
                ("packed", 2),
            ]
        server.stop()
        with surgery(data) as tx:
            assert U32.unpack(tx.txn.get(MetaKey.SCHEMA_VERSION, db=tx.dbs.meta))[0] == SCHEMA_VERSION == 4
            assert tx.txn.stat(tx.dbs.span_chunks)["entries"] == 1
    finally:
        server.stop()
