"""A real agl-server commits a lone span stream's batches on its event loop (``AGL_INLINE_COMMITS``,
agl_core/store/lmdb/writer.py), counts them in /metrics, and stores every span either way."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest
from support.http_listener import listening_server, scrape

from agl_core.client import GrpcStore
from agl_core.types import new_span

BATCHES = 30


async def send_one_at_a_time(store: GrpcStore) -> str:
    """A new rollout sent BATCHES two-span batches on ``store``'s span stream, each awaited before the
    next; its id."""
    rollout = await store.start_rollout({"n": 1})
    attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
    for i in range(BATCHES):
        spans = [new_span(f"step-{i}-{j}", rollout_id=rollout.rollout_id, attempt_id=attempt_id) for j in range(2)]
        assert (await store.add_spans(spans)).accepted == 2
    return rollout.rollout_id


@pytest.mark.parametrize("setting", ["on", "off"])
async def test_a_lone_streams_batches_commit_on_the_loop_and_are_all_stored(
    tmp_path: Path, http: aiohttp.ClientSession, setting: str
) -> None:
    with listening_server(tmp_path, env={**os.environ, "AGL_INLINE_COMMITS": setting}) as server:
        before = await scrape(http, server)
        async with GrpcStore(server.address) as store:
            rollout_id = await send_one_at_a_time(store)
            stored = await store.query_spans(rollout_id)
        after = await scrape(http, server)
    assert [s.sequence_id for s in stored] == list(range(1, 2 * BATCHES + 1))
    inline = after["agl_store_inline_commits_total"] - before["agl_store_inline_commits_total"]
    if setting == "off":
        assert inline == 0
    else:
        # Every batch after the stream's first, but where another write (the server's own, or the
        # rollout's start) came in between.
        assert BATCHES - 5 <= inline <= BATCHES - 1
    assert after["agl_store_commit_groups_total"] - before["agl_store_commit_groups_total"] >= BATCHES


async def test_concurrent_streams_still_share_group_commits(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    with listening_server(tmp_path) as server:
        async with GrpcStore(server.address) as store:
            # Each GrpcStore sends its spans on a stream of its own.
            stores = [GrpcStore(server.address) for _ in range(4)]
            try:
                before = await scrape(http, server)
                rollout_ids = await asyncio.gather(*(send_one_at_a_time(each) for each in stores))
                after = await scrape(http, server)
            finally:
                for each in stores:
                    await each.close()
            for rollout_id in rollout_ids:
                assert len(await store.query_spans(rollout_id)) == 2 * BATCHES
    inline = after["agl_store_inline_commits_total"] - before["agl_store_inline_commits_total"]
    # A stream's batch commits on the loop only when the write before it was its own: with four
    # streams writing at once that is the exception.
    assert inline < BATCHES * 4 / 2
