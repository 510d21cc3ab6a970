"""agl-server's coalesced attempt heartbeats (``runner_service/attempt_heartbeats.py``) over a real
LMDB store: the heartbeats of many held attempts reach the store as a few operations, each beat
answered for alone (an attempt that is gone fails by itself); over a backend without
``heartbeat_attempts``, one UpdateAttempt call each; and a Work stream's heartbeat refreshes the
attempts its worker holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2
from support.waits import until

from agl_core.client.backend import GrpcBackend
from agl_core.client.channel import ChannelConfig
from agl_core.errors import InvalidArgumentError, NotFoundError
from agl_core.proto import runner_pb2 as r
from agl_core.proto import runner_pb2_grpc
from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_core.store import LmdbStore
from agl_server.process import ServerProcess
from agl_server.runner_service.attempt_heartbeats import MAX_PER_WRITE, AttemptHeartbeats
from agl_server.runner_service.coalesce import Coalescer, outcomes


@pytest.fixture
async def store(data_dir: Path) -> AsyncIterator[LmdbStore]:
    store = LmdbStore(data_dir)
    yield store
    await store.close()


async def held_attempts(backend: object, count: int, worker_id: str = "w-held") -> list[tuple[str, str]]:
    """``count`` rollouts, each claimed by ``worker_id``: their (rollout id, attempt id)."""
    await enqueue(backend, count)
    claimed = await backend.dequeue_rollout(  # type: ignore[attr-defined]
        s.DequeueRolloutRequest(worker_id=worker_id, limit=count)
    )
    assert len(claimed.rollouts) == count
    return [(rollout.rollout_id, rollout.attempt.attempt_id) for rollout in claimed.rollouts]


async def enqueue(backend: object, count: int) -> None:
    specs = [s.RolloutSpec(input=struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)) for _ in range(count)]
    await backend.enqueue_rollouts(s.EnqueueRolloutsRequest(rollouts=specs))  # type: ignore[attr-defined]


async def last_beat_ns(backend: object, rollout_id: str) -> int:
    response = await backend.query_attempts(s.QueryAttemptsRequest(rollout_id=rollout_id))  # type: ignore[attr-defined]
    (attempt,) = response.attempts
    return int(attempt.last_heartbeat_time.ToNanoseconds())


async def test_beats_of_many_attempts_go_to_the_store_together(store: LmdbStore) -> None:
    held = await held_attempts(store.backend, 200)
    beats = AttemptHeartbeats(store.backend)
    ops_before = store.backend.writer_counts[1]
    when = time.time_ns() + 7_000_000_000  # a time no claim wrote
    await asyncio.gather(*(beats.beat(rollout_id, attempt_id, when) for rollout_id, attempt_id in held))
    for rollout_id, _ in (held[0], held[99], held[-1]):
        assert await last_beat_ns(store.backend, rollout_id) == when
    # One at a time, 200 operations; coalesced, the first alone and the rest in chunks.
    assert beats.items == 200
    assert beats.writes <= 1 + -(-199 // MAX_PER_WRITE), beats.writes
    assert store.backend.writer_counts[1] - ops_before == beats.writes


async def test_a_beat_whose_attempt_is_gone_fails_alone(store: LmdbStore) -> None:
    (first, second) = await held_attempts(store.backend, 2)
    when = time.time_ns() + 9_000_000_000
    answered = await store.backend.heartbeat_attempts(
        [
            (first[0], first[1], when),
            (first[0], "no-such-attempt", when),
            ("", second[1], when),
            (second[0], second[1], when),
        ]
    )
    assert answered[0] is None and answered[3] is None
    assert isinstance(answered[1], NotFoundError) and "no-such-attempt" in answered[1].message
    assert isinstance(answered[2], InvalidArgumentError) and "rollout_id" in answered[2].message
    assert await last_beat_ns(store.backend, first[0]) == when
    assert await last_beat_ns(store.backend, second[0]) == when
    # Through the coalescer, each caller hears of its own beat only.
    beats = AttemptHeartbeats(store.backend)
    results = await outcomes(beats.beat(first[0], first[1], when + 1), beats.beat(second[0], "gone-attempt", when + 1))
    assert results[0] is None and isinstance(results[1], NotFoundError)
    assert await last_beat_ns(store.backend, first[0]) == when + 1


async def test_a_backend_without_heartbeat_attempts_gets_one_call_per_beat(server: ServerProcess) -> None:
    backend = GrpcBackend(ChannelConfig(address=server.address))
    try:
        assert not hasattr(backend, "heartbeat_attempts")
        held = await held_attempts(backend, 5, worker_id="w-remote")
        beats = AttemptHeartbeats(backend)
        when = time.time_ns() + 5_000_000_000
        results = await outcomes(*(beats.beat(rollout_id, attempt_id, when) for rollout_id, attempt_id in held))
        assert results == [None] * 5
        assert beats.writes == beats.items == 5  # nothing coalesced: each its own UpdateAttempt call
        assert await last_beat_ns(backend, held[3][0]) == when
    finally:
        await backend.close()


async def test_a_work_stream_heartbeat_refreshes_the_attempts_its_worker_holds(server: ServerProcess) -> None:
    backend = GrpcBackend(ChannelConfig(address=server.address))
    try:
        await enqueue(backend, 3)
        async with grpc.aio.insecure_channel(server.address) as channel:
            call = runner_pb2_grpc.RunnerServiceStub(channel).Work()
            await call.write(r.WorkRequest(hello=r.WorkerHello(worker_id="w-beating", capacity=3)))
            held: list[str] = []
            async with asyncio.timeout(60):
                while len(held) < 3:
                    response = await call.read()
                    if response.WhichOneof("kind") == "assignment":
                        held.append(response.assignment.rollout.rollout_id)
            claimed = {rollout_id: await last_beat_ns(backend, rollout_id) for rollout_id in held}
            await call.write(r.WorkRequest(heartbeat=r.WorkerHeartbeat()))

            async def all_refreshed() -> bool:
                now = {rollout_id: await last_beat_ns(backend, rollout_id) for rollout_id in claimed}
                return all(now[rollout_id] > before for rollout_id, before in claimed.items())

            await until(all_refreshed, timeout=30, what="every held attempt's heartbeat refreshed")
            response = await backend.query_attempts(s.QueryAttemptsRequest(rollout_id=held[0]))
            assert response.attempts[0].status == t.ATTEMPT_STATUS_PREPARING  # a heartbeat changes no status
            call.cancel()
    finally:
        await backend.close()


async def no_single_writes(beat: tuple[str, str, int]) -> None:
    raise AssertionError(f"written alone: {beat}; the backend has heartbeat_attempts")


async def test_beats_linger_for_others_and_go_together(store: LmdbStore) -> None:
    held = await held_attempts(store.backend, 5)
    beats = Coalescer(store.backend.heartbeat_attempts, no_single_writes, MAX_PER_WRITE, linger=0.2)
    when = time.time_ns() + 3_000_000_000
    started = time.monotonic()
    await asyncio.gather(*(beats.submit((rid, aid, when), urgent=False) for rid, aid in held))
    # Without the window the first would go alone and the other four in a second write.
    assert beats.writes == 1 and beats.items == 5
    assert time.monotonic() - started >= 0.2
    assert await last_beat_ns(store.backend, held[4][0]) == when


async def test_an_urgent_item_sends_what_lingers_at_once_in_order(store: LmdbStore) -> None:
    (first, second) = await held_attempts(store.backend, 2)
    beats = Coalescer(store.backend.heartbeat_attempts, no_single_writes, MAX_PER_WRITE, linger=600.0)
    when = time.time_ns() + 4_000_000_000
    # Tasks start in the order they are made: the lingering beat is queued, its window open, first.
    lingering = asyncio.ensure_future(beats.submit((first[0], first[1], when), urgent=False))
    urgent = asyncio.ensure_future(beats.submit((second[0], second[1], when + 1)))
    async with asyncio.timeout(30):  # the window is 600 s: only the urgent item can end it
        await urgent
    assert lingering.done() and lingering.exception() is None
    assert beats.writes == 1 and beats.items == 2
    assert await last_beat_ns(store.backend, first[0]) == when
    assert await last_beat_ns(store.backend, second[0]) == when + 1
