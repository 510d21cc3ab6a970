"""The client retry policy (docs/retry.md) in the Python client, against a real agl-server that
the tests stop and restart: what is retried, for how long, and what fails at once."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from agl_core.client import GrpcStore
from agl_core.client.retry import STREAM_RETRYABLE, UNARY_RETRYABLE, Outage, backoff
from agl_core.errors import NotFoundError, UnavailableError
from agl_core.runner.work_stream import WorkStreamSource
from agl_server.process import ServerProcess


def test_the_policy_table() -> None:
    # The same table is pinned in clients/go/agl/retry_test.go and clients/ts/test/retry.test.ts.
    assert UNARY_RETRYABLE == {grpc.StatusCode.UNAVAILABLE}
    assert {c.name for c in STREAM_RETRYABLE} == {
        "UNAVAILABLE",
        "CANCELLED",
        "UNKNOWN",
        "INTERNAL",
        "DEADLINE_EXCEEDED",
    }
    assert grpc.StatusCode.ABORTED not in STREAM_RETRYABLE
    for failures, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (5, 1.6), (6, 2.0), (30, 2.0)]:
        assert ceiling / 2 <= backoff(failures) <= ceiling


def test_an_outage_gives_up_at_its_deadline_and_a_success_resets_it() -> None:
    outage = Outage(0.3)
    assert outage.failed() is not None  # the first failure is retried
    outage.since = time.monotonic() - 1.0  # as if the outage began a second ago
    assert outage.failed() is None
    outage.succeeded()
    assert outage.failures == 0 and outage.failed() is not None
    assert Outage(0).failed() is None  # 0: never retry


async def test_a_unary_call_outlasts_more_than_five_tries(server: ServerProcess) -> None:
    """gRPC's own retry policy stopped after 5 tries (about 1.5 s); the deadline is what counts now."""
    async with GrpcStore(server.address, retry_deadline=60) as store:
        rollout = await store.enqueue_rollout("before")
        server.stop()
        call = asyncio.create_task(store.get_rollout(rollout.rollout_id))
        # Down for longer than five back-offs: the call is still waiting, not failed.
        done, _ = await asyncio.wait({call}, timeout=3.0)
        assert not done
        await asyncio.to_thread(server.restart)
        again = await asyncio.wait_for(call, 60)
        assert again is not None and again.input == "before"


async def test_a_unary_call_gives_up_at_the_retry_deadline(server: ServerProcess) -> None:
    async with GrpcStore(server.address, retry_deadline=1.0) as store:
        await store.enqueue_rollout("x")
        server.stop()
        started = time.monotonic()  # the first failure of this call comes after this
        with pytest.raises(UnavailableError, match="not reachable"):
            await store.get_rollout("anything")
        assert time.monotonic() - started >= 1.0  # it retried until the deadline, not once


async def test_a_status_that_is_not_retried_fails_at_once(server: ServerProcess) -> None:
    async with GrpcStore(server.address, retry_deadline=60) as store:
        with pytest.raises(NotFoundError):
            await asyncio.wait_for(store.update_rollout("ro-missing", status="cancelled"), 10)


async def test_the_watch_stream_resumes_after_a_restart_and_gives_up_at_the_deadline(server: ServerProcess) -> None:
    async with GrpcStore(server.address, retry_deadline=60) as store:
        first = await store.enqueue_rollout("a")
        events: asyncio.Queue[str] = asyncio.Queue()

        async def follow() -> None:
            async with store.watch_rollouts(after_event_id=0) as watch:
                async for event in watch:
                    events.put_nowait(event.rollout_id)

        follower = asyncio.create_task(follow())
        assert await asyncio.wait_for(events.get(), 30) == first.rollout_id
        server.stop()
        await asyncio.to_thread(server.restart)
        second = await store.enqueue_rollout("b")
        assert await asyncio.wait_for(events.get(), 60) == second.rollout_id
        follower.cancel()

    async with GrpcStore(server.address, retry_deadline=1.0) as store:
        watch = store.watch_rollouts(after_event_id=0)
        await anext(aiter(watch))  # connected and reading
        server.stop()
        with pytest.raises(UnavailableError):
            await asyncio.wait_for(_drain(watch), 30)


async def _drain(watch: object) -> None:
    async for _ in watch:  # type: ignore[attr-defined]
        pass


async def test_the_work_stream_gives_up_at_the_retry_deadline(server: ServerProcess) -> None:
    source = WorkStreamSource(server.address, worker_id="w-retry", retry_deadline=1.0)
    await source.start()
    try:
        started = time.monotonic()  # the stream breaks while the server shuts down: the outage starts then
        server.stop()
        with pytest.raises(UnavailableError, match=r"lost the Work stream .* for more than 1s"):
            await asyncio.wait_for(source.next(), 30)  # the source gives up at its deadline
        assert time.monotonic() - started >= 1.0
    finally:
        await source.close()
