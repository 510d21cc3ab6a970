"""``AGL_EDGE_CHECK`` picks how a real agl-server checks span batches before storing them: the
compiled wire walk first (``wire``, the default where it is built) or the protobuf runtime's parse
alone (``parse``). /metrics says which runs, and both answer a batch alike: a span a reader could
not parse is rejected alone, by its index, and the others are stored and read back."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import grpc
import pytest
from support.http_listener import listening_server, scrape

from agl_core.client import GrpcStore
from agl_core.proto import store_pb2 as s
from agl_core.proto import trace_pb2
from agl_core.store.wire import varint
from agl_server import span_checks


def raw_span(rollout_id: str, attempt_id: str, name: bytes, span_id: bytes) -> bytes:
    """A span whose name is the bytes given, as they are (protobuf would refuse invalid UTF-8)."""
    raw = trace_pb2.Span(rollout_id=rollout_id, attempt_id=attempt_id, span_id=span_id).SerializeToString()
    return raw + b"\x2a" + varint(len(name)) + name  # Span.name = 5


@pytest.mark.parametrize("check", ["wire", "parse"])
async def test_both_checks_reject_the_unreadable_span_alone(
    tmp_path: Path, http: aiohttp.ClientSession, check: str
) -> None:
    if check == "wire" and span_checks.WireCheck is None:
        pytest.skip("the compiled wire walk is not built in this install (no C compiler at pip install)")
    with listening_server(tmp_path, env={**os.environ, "AGL_EDGE_CHECK": check}) as server:
        samples = await scrape(http, server)
        assert samples[f"agl_span_edge_check_info{{check={check}}}"] == 1
        async with GrpcStore(server.address) as store:
            rollout = await store.start_rollout({"n": 1})
            rollout_id, attempt_id = rollout.rollout_id, rollout.attempt.attempt_id  # type: ignore[union-attr]
            spans = [
                raw_span(rollout_id, attempt_id, "héllo".encode(), b"span0001"),
                raw_span(rollout_id, attempt_id, b"\xed\xa0\x80", b"span0002"),  # a surrogate: not UTF-8
                raw_span(rollout_id, attempt_id, "你好".encode(), b"span0003"),
            ]
            request = b"\x08\x05" + b"".join(b"\x12" + varint(len(raw)) + raw for raw in spans)
            async with grpc.aio.insecure_channel(server.address) as channel:
                call = channel.stream_stream(
                    "/agl.v1.LightningStoreService/IngestSpans",
                    request_serializer=None,
                    response_deserializer=s.IngestSpansResponse.FromString,
                )
                responses = [response async for response in call(iter([request]))]
            (response,) = responses
            assert response.batch_id == 5 and response.accepted == 2
            assert [(e.index, e.code) for e in response.rejected] == [(1, grpc.StatusCode.INVALID_ARGUMENT.value[0])]
            assert "UTF-8" in response.rejected[0].message
            assert [sp.name for sp in await store.query_spans(rollout_id)] == ["héllo", "你好"]
