"""What the edge-check tests share (test_edge_checks.py, test_edge_span_checks.py): the helpers
that expect a precise status, and the values they send. Their fixtures are in conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from agl_core.proto import store_pb2 as s

Code = grpc.StatusCode
INVALID = Code.INVALID_ARGUMENT
LONG_ID = "é" * 256  # 256 characters, 512 bytes: beyond LMDB's 511-byte keys
STORE = "/agl.v1.LightningStoreService"


async def expect(call, code: grpc.StatusCode, *fragments: str) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    for fragment in fragments:
        assert fragment in (info.value.details() or ""), info.value.details()
    return info.value


async def drain(stream) -> list:  # type: ignore[no-untyped-def]
    return [item async for item in stream]


def spec(**fields: object) -> s.RolloutSpec:
    message = s.RolloutSpec(**fields)  # type: ignore[arg-type]
    message.input.string_value = "task"
    return message


async def one_item(item: bytes) -> AsyncIterator[bytes]:
    """A request stream of one raw message."""
    yield item
