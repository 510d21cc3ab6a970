"""The data file grows by about a span's size per span ingested through agl-server.

LMDB copies every page a commit changes and can reuse the pages a commit freed only once no read
transaction still sees them. A read transaction left open (a long-lived reader, a query or watch
stream that holds its snapshot across an ``await``) stops that reuse, and then every commit's
copies pile up: with 64 spans per call spread over 64 attempts, each commit rewrites some 300
pages, and the file grows by over 10 KB per ~1 KB span. Measured through a real agl-server, one
call at a time (so each call is a commit of its own: the most pages copied per span), with a slow
QuerySpans reader and a watch stream open while spans arrive: growth per span must stay within a
generous bound (a size, never a time).

This also pins the count the growth is divided by: every span sent is acknowledged once and
stored once (a benchmark that lost concurrent counts once reported 33 KB per span).
"""

from __future__ import annotations

import asyncio
import os

from agl_core import new_span, semconv
from agl_core.client import GrpcStore
from agl_server.process import ServerProcess

ATTEMPTS = 64
BATCH = 64
INFLIGHT = 16
CALLS = 100  # 6,400 spans
READ_SPANS = 3_072  # more than the server sends before flow control holds back a slow reader
MAX_BYTES_PER_SPAN = 8 << 10  # ~1 KB spans take ~2 KB (B-tree pages about half full); no reuse: 10+ KB


def _span(rollout_id: str, attempt_id: str, i: int):  # type: ignore[no-untyped-def]
    """A ~1 KB span like an LLM call's (request and response bodies, token ids)."""
    return new_span(
        f"chat {i}",
        rollout_id=rollout_id,
        attempt_id=attempt_id,
        attributes={
            semconv.LLM_REQUEST: '{"messages": [{"role": "user", "content": "%s"}]}' % ("q" * 500),
            semconv.LLM_RESPONSE: '{"choices": [{"message": {"content": "%s"}}]}' % ("a" * 200),
            semconv.LLM_PROMPT_TOKEN_IDS: list(range(1000, 1042)),
        },
    )


async def test_data_file_grows_by_about_a_span_per_span(server: ServerProcess) -> None:
    async with GrpcStore(server.address) as store, GrpcStore(server.address) as reader:
        rollouts = [await store.start_rollout({"i": i}) for i in range(ATTEMPTS)]
        pool = [_span(r.rollout_id, r.attempt.attempt_id, i) for i, r in enumerate(rollouts)]  # type: ignore[union-attr]
        span_bytes = len(pool[0].SerializeToString())
        assert 900 < span_bytes < 1500, span_bytes
        semaphore = asyncio.Semaphore(INFLIGHT)
        accepted = 0

        async def send() -> None:
            nonlocal accepted
            async with semaphore:
                for span in pool:
                    span.span_id = os.urandom(8)
                result = await store.add_spans(pool)
                accepted += result.accepted
                assert result.duplicates == 0 and not result.rejected, result

        # Spans for the slow reader below, and a warm-up: the first pages of every sub-database
        # are new pages, not reused ones.
        read = await store.start_rollout("read slowly")
        for start in range(0, READ_SPANS, BATCH):
            result = await store.add_spans(
                [_span(read.rollout_id, read.attempt.attempt_id, i) for i in range(start, start + BATCH)]  # type: ignore[union-attr]
            )
            assert result.accepted == BATCH
        await asyncio.gather(*(send() for _ in range(INFLIGHT)))
        before = await store.stats()
        accepted = 0

        # Readers that must not pin old pages while spans arrive: a QuerySpans stream consumed
        # slowly (one span per round of ingest calls) and a watch stream.
        async def watch() -> None:
            async with reader.watch_rollouts() as events:
                async for _ in events:
                    pass

        watcher = asyncio.create_task(watch())
        query = reader.iter_spans(read.rollout_id)
        await query.__anext__()
        try:
            for call in range(CALLS):
                await send()  # awaited alone: its spans are committed alone
                if call % 10 == 0:
                    await query.__anext__()
        finally:
            await query.aclose()
            watcher.cancel()
        after = await store.stats()

    sent = CALLS * BATCH
    assert accepted == sent, (accepted, sent)
    assert after["spans"] - before["spans"] == sent
    per_span = (after["data_bytes"] - before["data_bytes"]) / sent
    assert per_span < MAX_BYTES_PER_SPAN, (
        f"the data file grew {per_span:,.0f} bytes per {span_bytes}-byte span; freed pages are not reused "
        f"(a read transaction left open?)\n{server.log_tail()}"
    )
