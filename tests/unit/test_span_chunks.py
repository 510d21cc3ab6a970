"""Spans are stored packed into chunks (span_chunks.py): every span reads back byte for byte
whatever its size and however writes mix rollouts, small spans stay whole, a chunk holds one
rollout's spans and stays bounded, deleting a rollout deletes its chunks and no other's, and spans
stored whole by an earlier release read beside packed ones."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agl_core import LmdbStore, new_span
from agl_core.proto import store_pb2 as s
from agl_core.proto import trace_pb2
from agl_core.store.lmdb.records import Tx
from agl_core.store.lmdb.schema import U64, span_key
from agl_core.store.lmdb.span_chunks import CHUNK_BYTES, REF, WHOLE_BYTES, inline_bytes, is_ref, partition


def _span(rollout_id: str, attempt_id: str, sequence_id: int, payload: int) -> bytes:
    span = new_span(f"s{sequence_id}", rollout_id=rollout_id, attempt_id=attempt_id, attributes={"p": "x" * payload})
    span.sequence_id = sequence_id  # given, so the span is stored exactly as sent
    span.span_id = os.urandom(8)
    return span.SerializeToString()


async def _stored(store: LmdbStore, rollout_id: str) -> list[bytes]:
    out: list[bytes] = []
    async for chunk in store.backend.query_span_bytes(s.QuerySpansRequest(rollout_id=rollout_id)):
        out.extend(chunk)
    return out


def _chunks(store: LmdbStore) -> dict[int, bytes]:
    backend = store.backend
    with backend.env.begin() as txn:
        return {U64.unpack(key)[0]: bytes(value) for key, value in txn.cursor(db=backend.dbs.span_chunks)}


def _references(store: LmdbStore) -> dict[int, set[int]]:
    """Chunk number -> the rollout numbers whose spans entries refer to it."""
    backend = store.backend
    refs: dict[int, set[int]] = {}
    with backend.env.begin() as txn:
        for key, value in txn.cursor(db=backend.dbs.spans):
            if is_ref(value):
                refs.setdefault(REF.unpack(value)[1], set()).add(U64.unpack(key[:8])[0])
    return refs


async def _attempt(store: LmdbStore, name: str) -> tuple[str, str]:
    """A new rollout's id and its first attempt's."""
    rollout = await store.start_rollout(name)
    assert rollout.attempt is not None
    return rollout.rollout_id, rollout.attempt.attempt_id


def _num(store: LmdbStore, rollout_id: str) -> int:
    with store.backend.env.begin() as txn:
        return Tx(txn, store.backend.dbs).rollout(rollout_id).num


@dataclass
class Opened:
    """A store and the one event loop its calls run on (hypothesis examples are not coroutines)."""

    store: LmdbStore
    loop: asyncio.AbstractEventLoop

    def run(self, check: Callable[[LmdbStore], Awaitable[None]]) -> None:
        self.loop.run_until_complete(check(self.store))


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[Opened]:
    loop = asyncio.new_event_loop()
    store = LmdbStore(tmp_path / "s", sync=False)
    yield Opened(store, loop)
    loop.run_until_complete(store.close())
    loop.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(st.lists(st.integers(0, 12_000), min_size=1, max_size=12), min_size=1, max_size=4))
def test_spans_of_any_size_read_back_byte_for_byte(opened: Opened, writes: list[list[int]]) -> None:
    async def check(store: LmdbStore) -> None:
        rollout_id, attempt_id = await _attempt(store, "r")
        sent: list[bytes] = []
        for payloads in writes:
            raws = [_span(rollout_id, attempt_id, len(sent) + i + 1, p) for i, p in enumerate(payloads)]
            assert (await store.backend.ingest_span_bytes(raws)).accepted == len(raws)
            sent.extend(raws)
        assert await _stored(store, rollout_id) == sent

    opened.run(check)


def test_a_write_packs_each_rollouts_spans_into_its_own_bounded_chunks(opened: Opened) -> None:
    async def check(store: LmdbStore) -> None:
        a, b = await store.start_rollout("a"), await store.start_rollout("b")
        payload = 5_000
        raws_a = [_span(a.rollout_id, a.attempt.attempt_id, i + 1, payload) for i in range(10)]  # type: ignore[union-attr]
        raws_b = [_span(b.rollout_id, b.attempt.attempt_id, i + 1, 1_000) for i in range(3)]  # type: ignore[union-attr]
        mixed = [raw for pair in zip(raws_a, raws_b + [b""] * 7, strict=True) for raw in pair if raw]
        assert (await store.backend.ingest_span_bytes(mixed)).accepted == 13
        assert await _stored(store, a.rollout_id) == raws_a
        assert await _stored(store, b.rollout_id) == raws_b

        chunks, refs = _chunks(store), _references(store)
        assert set(chunks) == set(refs)
        assert all(len(owners) == 1 for owners in refs.values()), refs  # a chunk is one rollout's
        largest = max(len(raw) for raw in raws_a)
        assert all(
            len(chunk) < CHUNK_BYTES + largest for chunk in chunks.values()
        )  # past the bound by one span at most
        # 50 KB of rollout a's spans take several chunks, b's 3 KB at least one more.
        assert len(chunks) >= 1 + (len(raws_a) * payload) // (CHUNK_BYTES + largest)
        assert set().union(*refs.values()) == {_num(store, a.rollout_id), _num(store, b.rollout_id)}
        assert sorted(chunks) == list(range(1, len(chunks) + 1))  # numbered in write order

    opened.run(check)


def test_deleting_a_rollout_deletes_its_chunks_and_no_others(opened: Opened) -> None:
    async def check(store: LmdbStore) -> None:
        rollouts = [await store.start_rollout(f"r{i}") for i in range(3)]
        sent: dict[str, list[bytes]] = {r.rollout_id: [] for r in rollouts}
        for write in range(4):  # every write carries spans of every rollout
            raws = []
            for r in rollouts:
                raw = _span(r.rollout_id, r.attempt.attempt_id, write + 1, 2_000)  # type: ignore[union-attr]
                sent[r.rollout_id].append(raw)
                raws.append(raw)
            assert (await store.backend.ingest_span_bytes(raws)).accepted == 3
        for r in rollouts:
            await store.update_attempt(r.rollout_id, r.attempt.attempt_id, status="succeeded")  # type: ignore[union-attr]

        gone = rollouts[1].rollout_id
        summary = await store.delete_rollouts([gone])
        assert (summary.deleted_rollouts, summary.deleted_spans) == (1, 4)
        assert set(_chunks(store)) == set(_references(store))  # no chunk left without its spans
        for r in (rollouts[0], rollouts[2]):
            assert await _stored(store, r.rollout_id) == sent[r.rollout_id]

        await store.delete_rollouts([rollouts[0].rollout_id, rollouts[2].rollout_id])
        assert _chunks(store) == {}

    opened.run(check)


def test_chunk_numbers_are_never_reused_even_after_a_restart(tmp_path: Path) -> None:
    """A deletion spread over several writes leaves entries that refer to chunks it already
    deleted; a new chunk must not take such a number, or those entries would read (and their
    deletion delete) another rollout's spans. Here the deleted chunks are the newest ones, and the
    store is reopened in between, so the numbers cannot come from the last chunk stored."""
    path = tmp_path / "s"

    async def write(store: LmdbStore, name: str) -> str:
        rollout_id, attempt_id = await _attempt(store, name)
        raws = [_span(rollout_id, attempt_id, i + 1, 2_000) for i in range(3)]
        assert (await store.backend.ingest_span_bytes(raws)).accepted == 3
        await store.update_attempt(rollout_id, attempt_id, status="succeeded")
        return rollout_id

    async def check() -> None:
        store = LmdbStore(path, sync=False)
        await write(store, "old")
        newest = await write(store, "newest")
        issued = max(_chunks(store))
        await store.delete_rollouts([newest])  # the chunks with the highest numbers
        assert max(_chunks(store)) < issued
        await store.close()

        store = LmdbStore(path, sync=False)
        try:
            later = await write(store, "later")
            numbers = [number for number, owners in _references(store).items() if _num(store, later) in owners]
            assert numbers and min(numbers) > issued
        finally:
            await store.close()

    asyncio.run(check())


def test_spans_with_a_shared_resource_pack_and_read_back(opened: Opened) -> None:
    """A span's OTLP resource is cut out and stored once (span_resources.py, its own 0x00 marker)
    before the span is packed; both forms read back as sent."""

    async def check(store: LmdbStore) -> None:
        rollout_id, attempt_id = await _attempt(store, "r")
        sent = []
        for sequence_id, payload in ((1, 10), (2, 3_000)):  # one stored whole, one packed
            span = trace_pb2.Span.FromString(_span(rollout_id, attempt_id, sequence_id, payload))
            span.resource.attributes.add(key="service.name").value.string_value = "svc" * 100
            sent.append(span)
        response = await store.backend.ingest_span_bytes([span.SerializeToString() for span in sent])
        assert response.accepted == 2
        assert [trace_pb2.Span.FromString(raw) for raw in await _stored(store, rollout_id)] == sent
        with store.backend.env.begin() as txn:
            assert txn.stat(store.backend.dbs.span_resources)["entries"] == 1
        assert len(_references(store)) == 1

    opened.run(check)


def test_small_spans_are_stored_whole(opened: Opened) -> None:
    async def check(store: LmdbStore) -> None:
        rollout_id, attempt_id = await _attempt(store, "r")
        small = _span(rollout_id, attempt_id, 1, 10)
        large = _span(rollout_id, attempt_id, 2, WHOLE_BYTES)
        assert len(small) <= WHOLE_BYTES < len(large)
        assert (await store.backend.ingest_span_bytes([small, large])).accepted == 2
        with store.backend.env.begin() as txn:
            values = [bytes(value) for value in txn.cursor(db=store.backend.dbs.spans).iternext(keys=False)]
        assert values[0] == small and is_ref(values[1])
        assert await _stored(store, rollout_id) == [small, large]

    opened.run(check)


def test_spans_stored_whole_read_beside_packed_ones(opened: Opened) -> None:
    async def check(store: LmdbStore) -> None:
        rollout_id, attempt_id = await _attempt(store, "r")
        old = _span(rollout_id, attempt_id, 1, 3_000)
        num = _num(store, rollout_id)
        with store.backend.env.begin(write=True) as txn:  # as schema 3 stored it: the span itself
            txn.put(span_key(num, 1, 1, trace_pb2.Span.FromString(old).span_id), old, db=store.backend.dbs.spans)
        new = [_span(rollout_id, attempt_id, i, 3_000) for i in (2, 3)]
        assert (await store.backend.ingest_span_bytes(new)).accepted == 2
        assert await _stored(store, rollout_id) == [old, *new]

    opened.run(check)


def test_a_span_whose_chunk_is_already_deleted_is_skipped(opened: Opened) -> None:
    """Between the operations of a large deletion, entries may outlive their chunk: reads skip them."""

    async def check(store: LmdbStore) -> None:
        rollout_id, attempt_id = await _attempt(store, "r")
        first = [_span(rollout_id, attempt_id, i + 1, 1_000) for i in range(3)]
        second = [_span(rollout_id, attempt_id, i + 4, 1_000) for i in range(2)]
        assert (await store.backend.ingest_span_bytes(first)).accepted == len(first)
        first_chunks = set(_chunks(store))
        assert (await store.backend.ingest_span_bytes(second)).accepted == len(second)
        with store.backend.env.begin(write=True) as txn:
            for number in first_chunks:
                assert txn.delete(U64.pack(number), db=store.backend.dbs.span_chunks)
        assert await _stored(store, rollout_id) == second

    opened.run(check)


@given(sizes=st.lists(st.integers(5, 40_000), min_size=1, max_size=60))
def test_partition_covers_every_span_once_in_bounded_chunks(sizes: list[int]) -> None:
    inline = inline_bytes(4096)
    ends = partition(sizes, inline)
    assert ends == sorted(set(ends)) and ends[-1] == len(sizes)
    starts = [0, *ends[:-1]]
    for start, end in zip(starts, ends, strict=True):
        chunk = sizes[start:end]
        assert chunk, (start, end)
        assert len(chunk) == 1 or sum(chunk) <= CHUNK_BYTES, chunk
