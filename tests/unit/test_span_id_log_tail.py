"""An attempt's span-id log is appended to at its real end whatever the index remembers of it.

The index keeps the number of each attempt's last chunk as its last append left it (``_Filter.tail``)
and reads that chunk by its key instead of seeking the log's end. An append that is rolled back may
leave that number pointing at a chunk that is gone, or at one whose content went back to what it
was: the appends after it must store exactly the chunks that seeking the end stores, in Python
(``span_id_log.append``) and compiled (``span_loop.append``) alike."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lmdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agl_core.store.lmdb import span_id_log, span_path
from agl_core.store.lmdb.span_id_log import CHUNK_ENTRIES, CHUNK_KEY, ENTRY, log_entry
from agl_core.store.lmdb.span_ids import SpanIdIndex

WAYS: dict[str, Callable[..., int]] = {"python": span_id_log.append}
if span_path.compiled_available():
    WAYS["compiled"] = span_path.log_append("compiled")


def contents(env: lmdb.Environment, db: Any) -> list[tuple[bytes, bytes]]:
    with env.begin() as txn:
        return list(txn.cursor(db=db))


def two_logs(root: str) -> Iterator[tuple[lmdb.Environment, Any]]:
    for name in ("reference", "tail"):
        env = lmdb.open(str(Path(root) / name), max_dbs=2, map_size=1 << 26)
        yield env, env.open_db(b"log")


# (attempt, entries appended, whether the write is rolled back)
steps = st.lists(
    st.tuples(st.integers(1, 3), st.integers(1, 3 * CHUNK_ENTRIES), st.booleans()), min_size=1, max_size=25
)


@pytest.mark.parametrize("way", sorted(WAYS))
@settings(max_examples=60, deadline=None)
@given(steps=steps)
def test_appends_from_a_remembered_tail_store_what_seeking_the_end_stores(way: str, steps) -> None:  # type: ignore[no-untyped-def]
    append = WAYS[way]
    tails = {seq: -1 for seq in (1, 2, 3)}
    serial = 0
    with tempfile.TemporaryDirectory() as root:
        (ref_env, ref_db), (env, db) = two_logs(root)
        try:
            for seq, count, rolled_back in steps:
                entries = [log_entry((serial + i).to_bytes(8, "big")) for i in range(count)]
                serial += count
                txn = env.begin(write=True)
                # As the index does: the tail is kept whether or not the write then commits.
                tails[seq] = append(txn, db, 7, seq, entries, tails[seq])
                if rolled_back:
                    txn.abort()
                    continue
                txn.commit()
                with ref_env.begin(write=True, db=ref_db) as ref:
                    last = span_id_log.append(ref, ref_db, 7, seq, entries)  # no tail: the end sought
                assert tails[seq] == last
                assert contents(env, db) == contents(ref_env, ref_db)
        finally:
            ref_env.close()
            env.close()


@pytest.mark.parametrize("way", sorted(WAYS))
def test_a_rolled_back_append_that_added_chunks_leaves_the_next_at_the_logs_end(tmp_path: Path, way: str) -> None:
    env = lmdb.open(str(tmp_path / "env"), max_dbs=2, map_size=1 << 26)
    db = env.open_db(b"log")
    index = SpanIdIndex(append=WAYS[way])
    kept = [n.to_bytes(8, "big") for n in range(30)]
    with env.begin(write=True) as txn:
        assert all(index.add_if_new(txn, db, 1, 1, span_id) for span_id in kept)
        index.flush(txn, db)
    assert index._filters[(1, 1)].tail == 0
    txn = env.begin(write=True)
    assert all(index.add_if_new(txn, db, 1, 1, n.to_bytes(8, "big")) for n in range(100, 140))
    index.flush(txn, db)  # chunk 0 filled, chunks 1 and 2 added: then rolled back
    assert index._filters[(1, 1)].tail == 2
    txn.abort()
    index.discard_pending()
    more = [n.to_bytes(8, "big") for n in range(200, 205)]
    with env.begin(write=True) as txn:
        assert all(index.add_if_new(txn, db, 1, 1, span_id) for span_id in more)
        index.flush(txn, db)
    assert index._filters[(1, 1)].tail == 1
    with env.begin() as txn:
        first, second = txn.get(CHUNK_KEY.pack(1, 1, 0), db=db), txn.get(CHUNK_KEY.pack(1, 1, 1), db=db)
        assert txn.get(CHUNK_KEY.pack(1, 1, 2), db=db) is None
    assert len(first) == CHUNK_ENTRIES * ENTRY and len(second) == 3 * ENTRY
    log = first + second
    logged = [log[i : i + ENTRY] for i in range(0, len(log), ENTRY)]
    assert sorted(logged) == sorted(log_entry(span_id) for span_id in kept + more)  # nothing lost, none twice
    assert set(logged[:30]) == {log_entry(span_id) for span_id in kept}  # the kept write's entries first
    env.close()
