"""An attempt's span-id filter outgrows its size without the writer reading the attempt's whole log
at once: the larger filter is filled a few chunks per write, and answers stay exact throughout. A
filter filled from the log is the one the writer would have made id by id."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import lmdb
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agl_core.store.lmdb import span_path
from agl_core.store.lmdb.span_id_log import CHUNK_ENTRIES, log_entry
from agl_core.store.lmdb.span_ids import (
    GROW_ENTRIES,
    MIN_BITS,
    SpanIdIndex,
    _add_all,
    _add_vectorized,
    _Filter,
)


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


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.binary(min_size=1, max_size=16), max_size=300),
    nbits=st.sampled_from([MIN_BITS, 1 << 13, 1 << 16]),
)
def test_filling_from_a_log_sets_exactly_the_bits_of_adding_each_id(ids: list[bytes], nbits: int) -> None:
    """A filter filled from log entries at once (a rebuild, a growing filter), with numpy or
    without, is bit for bit the one the writer's own add() makes, id by id: a bit it missed would
    turn a resend into a new span."""
    one_by_one, at_once, vectorized, compiled = _Filter(nbits), _Filter(nbits), _Filter(nbits), _Filter(nbits)
    for span_id in ids:
        one_by_one.add(log_entry(span_id))
    entries = b"".join(log_entry(span_id) for span_id in ids)
    _add_all(at_once, entries)
    _add_vectorized(vectorized, entries, numpy)
    assert at_once.bits == one_by_one.bits
    assert vectorized.bits == one_by_one.bits
    if span_path.compiled_available():  # the compiled span loop's fill, which the store uses with it
        span_path.filter_fill("compiled")(compiled, entries)
        assert compiled.bits == one_by_one.bits


def test_the_store_fills_filters_the_way_of_its_span_loop() -> None:
    assert span_path.filter_fill("python") is _add_all
    if not span_path.compiled_available():
        if shutil.which("cc") is not None:
            raise AssertionError("pip install -e . should have built the compiled span loop (a C compiler is here)")
        pytest.skip("no C compiler here, so there is no compiled fill")
    fill = span_path.filter_fill("compiled")
    assert fill is not _add_all
    with pytest.raises(ValueError, match="whole 17-byte entries"):
        fill(_Filter(MIN_BITS), log_entry(b"id") + b"\x01")  # a log never holds part of an entry


def test_the_compiled_fill_grows_and_rebuilds_filters_without_numpy(tmp_path: Path) -> None:
    """With the compiled span loop the store never imports numpy (15 MB, 60 ms) for its filters:
    an attempt grows past LARGE_FILL ids and is then rebuilt whole from its log, in a fresh
    interpreter, against a real LMDB log; every id stays known."""
    if not span_path.compiled_available():
        pytest.skip("no compiled span loop here")
    script = """
import os, sys
import lmdb
from agl_core.store.lmdb import span_ids, span_path
from agl_core.store.lmdb.span_ids import LARGE_FILL, SpanIdIndex

env = lmdb.open(sys.argv[1], max_dbs=2, map_size=1 << 28)
log = env.open_db(b"log")
fill = span_path.filter_fill("compiled")
index = SpanIdIndex(add_all=fill)
written = []
with env.begin(write=True) as txn:
    for _ in range(3 * LARGE_FILL // 8):  # 8 ids a write: grows past LARGE_FILL, filled 128 entries a write
        ids = [os.urandom(8) for _ in range(8)]
        assert all(index.add_if_new(txn, log, 1, 1, span_id) for span_id in ids)
        index.flush(txn, log)
        written += ids
print(index.grows == 2, span_ids._importer is None, "numpy" in sys.modules)  # 256, then 2,048 ids
again = SpanIdIndex(add_all=fill)  # a restarted server: the filter is rebuilt from the whole log
with env.begin() as txn:
    print(not any(again.add_if_new(txn, log, 1, 1, span_id) for span_id in written), again.rebuilds)
print("numpy" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "log")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["True True False", "True 1", "False"], done.stdout


def test_numpy_is_loaded_only_by_a_large_fill() -> None:
    """A server whose attempts stay small never imports numpy (15 MB, 60 ms); the first fill of
    LARGE_FILL entries does, in a fresh interpreter."""
    script = """
import os, sys
from agl_core.store.lmdb.span_id_log import log_entry
from agl_core.store.lmdb.span_ids import LARGE_FILL, _add_all, _sized
small = b"".join(log_entry(os.urandom(8)) for _ in range(LARGE_FILL - 1))
_add_all(_sized(LARGE_FILL), small)
print("numpy" in sys.modules)
_add_all(_sized(LARGE_FILL), small + log_entry(b"one more"))
print("numpy" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["False", "True"], done.stderr


def test_an_attempt_read_back_from_its_log_knows_every_id(log) -> None:  # type: ignore[no-untyped-def]
    """After a restart (a new index over the same log), the first write rebuilds the attempt's
    filter from the log: every id written before is a duplicate, and fresh ones are new."""
    env, db = log
    written = [os.urandom(8) for _ in range(3_000)]
    write(SpanIdIndex(), env, db, written)
    index = SpanIdIndex()  # what a restarted server starts with
    with env.begin(write=True) as txn:
        assert not any(index.add_if_new(txn, db, 1, 1, span_id) for span_id in written)
        assert index.rebuilds == 1
        assert all(index.add_if_new(txn, db, 1, 1, os.urandom(9)) for _ in range(100))


def test_a_filter_growing_past_large_fill_loads_numpy_in_the_background(tmp_path: Path) -> None:
    """The fills of a growing filter are small (GROW_ENTRIES) and would run in Python; once a
    filter grows past LARGE_FILL ids, numpy is imported on a thread of its own, not on the writer.
    Below that size nothing loads it. In a fresh interpreter, against a real LMDB log."""
    script = """
import os, sys, threading
import lmdb
from agl_core.store.lmdb import span_ids
from agl_core.store.lmdb.span_ids import LARGE_FILL, SpanIdIndex

env = lmdb.open(sys.argv[1], max_dbs=2, map_size=1 << 28)
log = env.open_db(b"log")
index = SpanIdIndex()
with env.begin(write=True) as txn:
    for _ in range(LARGE_FILL):  # it grows past 256 ids, to a filter for LARGE_FILL: no numpy yet
        assert index.add_if_new(txn, log, 1, 1, os.urandom(8))
        index.flush(txn, log)
    print(span_ids._importer is None, "numpy" in sys.modules)
    assert index.add_if_new(txn, log, 1, 1, os.urandom(8))  # past LARGE_FILL: it grows again
    index.flush(txn, log)
    importer = span_ids._importer
    print(importer is not None and importer.name, importer is not threading.current_thread())
    importer.join(60)
    print(span_ids._loaded_numpy() is not None)
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "log")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["True False", "agl-numpy-import True", "True"], done.stdout
