"""agl-server's dispatcher: one claim per round for every Work stream with room, oldest waiter first.

Against a real agl-server (with its HTTP listener, whose metrics count the store's writes) and raw
Work streams driven message by message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from support.http_listener import scrape
from support.raw_worker import RawWorker, idle_worker

from agl_core.client import GrpcStore
from agl_core.proto import types_pb2 as t
from agl_server.process import ServerProcess

WRITES = "agl_store_commit_group_operations_sum"


@pytest.fixture
def metered_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "data", args=["--http-port", "0"], log_path=tmp_path / "server.log") as process:
        yield process


@pytest.fixture
async def client(metered_server: ServerProcess) -> AsyncIterator[GrpcStore]:
    store = GrpcStore(metered_server.address)
    yield store
    await store.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def opened() -> AsyncIterator[list[RawWorker]]:
    workers: list[RawWorker] = []
    yield workers
    await asyncio.gather(*(worker.close() for worker in workers), return_exceptions=True)


async def test_one_rollout_queued_costs_one_claim_however_many_streams_wait(
    metered_server: ServerProcess, client: GrpcStore, http: aiohttp.ClientSession, opened: list[RawWorker]
) -> None:
    workers = [await idle_worker(metered_server.address, client, f"w-{i:02d}", opened) for i in range(40)]
    before = (await scrape(http, metered_server))[WRITES]

    rollout = await client.enqueue_rollout({"task": "one"})
    received = await asyncio.wait(
        [asyncio.ensure_future(worker.assignment(within=30)) for worker in workers],
        return_when=asyncio.FIRST_COMPLETED,
    )
    assignment = next(iter(received[0])).result()
    assert assignment.rollout.rollout_id == rollout.rollout_id
    for pending in received[1]:
        pending.cancel()

    # The enqueue and one claim (a stray heartbeat at most): not a claim per waiting stream, which
    # is what 40 streams each claiming for themselves on every queue change cost.
    writes = (await scrape(http, metered_server))[WRITES] - before
    assert 2 <= writes <= 5, f"{writes:g} writes for one rollout handed to one of 40 waiting streams"
    # Nobody else got it.
    assert [w for w in workers if not w.inbox.empty()] == []


async def test_the_stream_that_waited_longest_gets_the_next_rollout(
    metered_server: ServerProcess, client: GrpcStore, opened: list[RawWorker]
) -> None:
    names = ["w-a", "w-b", "w-c"]
    workers = dict(
        zip(names, [await idle_worker(metered_server.address, client, n, opened) for n in names], strict=True)
    )
    order = []
    for i in range(6):
        rollout = await client.enqueue_rollout({"i": i})
        got = await asyncio.wait(
            [asyncio.ensure_future(w.assignment(within=30)) for w in workers.values()],
            return_when=asyncio.FIRST_COMPLETED,
        )
        for pending in got[1]:
            pending.cancel()
        assignment = next(iter(got[0])).result()
        assert assignment.rollout.rollout_id == rollout.rollout_id
        taker = assignment.rollout.attempt.worker_id
        order.append(taker)
        # Done at once: the taker waits again, now behind the others.
        ack = await workers[taker].report(assignment, t.ATTEMPT_STATUS_SUCCEEDED)
        assert ack.code == 0
    assert order == names + names
