"""Fixtures of the edge-check tests (test_edge_checks.py, test_edge_span_checks.py): a channel to
a real agl-server, and a seeded store whose data must survive every bad request (checked after
each test). test_bad_input.py has a ``stub`` and a ``seeded`` of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from agl_core import new_span
from agl_core.client import GrpcStore
from agl_core.proto import store_pb2_grpc
from agl_server.process import ServerProcess


@pytest.fixture
async def channel(server: ServerProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield channel


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> store_pb2_grpc.LightningStoreServiceStub:
    return store_pb2_grpc.LightningStoreServiceStub(channel)


@pytest.fixture
async def seeded(server: ServerProcess) -> AsyncIterator[tuple[GrpcStore, str, str]]:
    """A running rollout (with an unresponsive_seconds policy) and three spans that must survive."""
    async with GrpcStore(server.address) as store:
        rollout = await store.start_rollout({"keep": "me"}, config={"unresponsive_seconds": 3600})
        attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
        await store.add_spans(
            [new_span(f"s{i}", rollout_id=rollout.rollout_id, attempt_id=attempt_id) for i in range(3)]
        )
        yield store, rollout.rollout_id, attempt_id
        assert server.alive(), server.log_tail()
        after = await store.get_rollout(rollout.rollout_id)
        assert after is not None and after.input == {"keep": "me"} and after.status == "running"
        assert [sp.name for sp in await store.query_spans(rollout.rollout_id)][:3] == ["s0", "s1", "s2"]
