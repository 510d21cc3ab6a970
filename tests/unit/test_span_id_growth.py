"""An attempt's span-id filter outgrows its size without the writer reading the attempt's whole log
at once: the larger filter is filled a few chunks per write, and answers stay exact throughout."""

from __future__ import annotations

import os
from pathlib import Path

import lmdb
import pytest

from agl_core.store.lmdb.span_ids import CHUNK_ENTRIES, GROW_ENTRIES, SpanIdIndex


@pytest.fixture
def log(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = lmdb.open(str(tmp_path / "env"), max_dbs=2, map_size=1 << 28)
    yield env, env.open_db(b"log")
    env.close()


def write(index: SpanIdIndex, env: lmdb.Environment, db: lmdb._Database, ids: list[bytes]) -> None:
    with env.begin(write=True) as txn:
        assert all(index.add_if_new(txn, db, 1, 1, span_id) for span_id in ids)
        index.flush(txn, db)


def held(index: SpanIdIndex) -> int:
    return sum(flt.held for flt in index._filters.values())


def test_a_growing_filter_reads_a_few_chunks_per_write(log) -> None:  # type: ignore[no-untyped-def]
    env, db = log
    index = SpanIdIndex()
    ids: list[bytes] = []
    most_read = 0
    for _ in range(2_000):  # 20,000 ids in 10-id writes: the filter outgrows its size several times
        batch = [os.urandom(8) for _ in range(10)]
        before = index.filled
        write(index, env, db, batch)
        most_read = max(most_read, index.filled - before)
        ids += batch
        assert index._bits == held(index)  # a growing filter's successor is counted in the budget
    assert index.rebuilds == 1  # the first write only: no later filter was made from the whole log
    assert index.grows >= 3
    # A write reads its share and at most one chunk more (a chunk is read whole).
    assert 0 < most_read <= GROW_ENTRIES + CHUNK_ENTRIES
    assert index.filled >= 2_048  # every id logged before a growth began was read into its successor
    with env.begin() as txn:
        assert not any(index.add_if_new(txn, db, 1, 1, span_id) for span_id in ids)
        index.discard_pending()
    write(index, env, db, [os.urandom(8) for _ in range(10)])


def test_a_large_write_reads_in_step_with_it(log) -> None:  # type: ignore[no-untyped-def]
    env, db = log
    index = SpanIdIndex()
    while index.grows < 2:  # the second growth, at about 2,000 ids: its successor has most to read
        write(index, env, db, [os.urandom(8) for _ in range(10)])
    flt = index._filters[(1, 1)]
    assert flt.successor is not None and (flt.last_chunk - flt.next_chunk) * CHUNK_ENTRIES > 1_000
    before = index.filled
    write(index, env, db, [os.urandom(8) for _ in range(500)])
    # Twice the write's own ids are read, so a stream of large writes cannot outrun the filling.
    assert 1_000 <= index.filled - before <= 1_000 + CHUNK_ENTRIES


def test_growth_begun_in_a_rolled_back_write_stays_exact(log) -> None:  # type: ignore[no-untyped-def]
    env, db = log
    index = SpanIdIndex()
    kept = [os.urandom(8) for _ in range(300)]
    write(index, env, db, kept)
    lost = [os.urandom(8) for _ in range(300)]
    txn = env.begin(write=True)
    assert all(index.add_if_new(txn, db, 1, 1, span_id) for span_id in lost)
    index.flush(txn, db)  # the filter outgrows its size here, in a write that is then rolled back
    assert index.grows == 1
    txn.abort()
    index.discard_pending()
    more = [os.urandom(8) for _ in range(2_000)]
    for i in range(0, len(more), 10):
        write(index, env, db, more[i : i + 10])
    with env.begin(write=True) as txn:
        assert all(index.add_if_new(txn, db, 1, 1, span_id) for span_id in lost)  # never stored: new
        assert not any(index.add_if_new(txn, db, 1, 1, span_id) for span_id in kept + more)
        txn.abort()
    index.discard_pending()


def test_large_attempts_get_more_bits_per_id(log) -> None:  # type: ignore[no-untyped-def]
    """A false positive costs a read of the attempt's whole log, so those get rarer as it grows."""
    env, db = log
    index = SpanIdIndex()
    write(index, env, db, [os.urandom(8) for _ in range(200)])
    small = index._filters[(1, 1)]
    assert small.size // small.capacity == 16
    for _ in range(20):  # 20,200 ids; the filter last grew at 8,200, sized for 33,056
        write(index, env, db, [os.urandom(8) for _ in range(1_000)])
    large = index._filters[(1, 1)]
    assert large.successor is None and large.count == 20_200
    assert large.size // large.capacity == 24
