"""The span-id index's per-write work is that of the attempts the write touched, not of every
attempt whose filter is cached (issue 11, item 8)."""

from __future__ import annotations

import os
from pathlib import Path

import lmdb

from agl_core.store.lmdb.span_ids import SpanIdIndex


def test_a_flush_visits_only_the_attempts_written(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "env"), max_dbs=2, map_size=1 << 28)
    log = env.open_db(b"log")
    index = SpanIdIndex()
    with env.begin(write=True) as txn:
        for num in range(1, 2_001):  # 2,000 attempts with a cached filter each
            assert index.add_if_new(txn, log, num, 1, os.urandom(8))
        index.flush(txn, log)
    assert index.appends == 2_000
    with env.begin(write=True) as txn:
        for _ in range(10):  # a 10-span write to one attempt
            assert index.add_if_new(txn, log, 7, 1, os.urandom(8))
        index.flush(txn, log)
    assert index.appends == 2_001
    with env.begin(write=True) as txn:
        span_id = os.urandom(8)
        assert index.add_if_new(txn, log, 9, 1, span_id)
        index.discard_pending()  # rolled back before its flush
        index.flush(txn, log)
        assert index.appends == 2_001
        assert index.add_if_new(txn, log, 9, 1, span_id)  # still new: it never reached the log
    env.close()
