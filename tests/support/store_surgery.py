"""Writing records straight into an LMDB data directory, bypassing every check of agl-server.

Tests use it to plant what the server's edge would refuse today but an older release, a bug or
a disk may have left behind (a timestamp outside protobuf's range, undecodable bytes), and then
check that the store copes with it. Open it while no server runs on the directory, or accept
that the server sees the change at its next read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from agl_core.proto import types_pb2 as t
from agl_core.store.lmdb.records import RolloutRecord, Tx
from agl_core.store.lmdb.schema import attempt_key, open_environment


@contextmanager
def surgery(data_dir: str | os.PathLike[str]) -> Iterator[Tx]:
    """A write transaction on the data directory (committed when the block ends without error)."""
    env, dbs = open_environment(os.fspath(data_dir), map_size=1 << 30, sync=True)
    try:
        with env.begin(write=True) as txn:
            yield Tx(txn, dbs)
    finally:
        env.close()


def edit_latest_attempt(tx: Tx, rollout_id: str, edit: Callable[[RolloutRecord, t.Attempt], None]) -> t.Attempt:
    """Apply ``edit`` to the rollout record and its latest attempt, and store both as they are then."""
    record = tx.rollout(rollout_id)
    attempt = tx.latest_attempt(record)
    assert attempt is not None, f"rollout {rollout_id!r} has no attempt"
    edit(record, attempt)
    tx.put_rollout(record)
    tx.put_attempt(record.num, attempt)
    return attempt


def corrupt_latest_attempt(tx: Tx, rollout_id: str) -> None:
    """Replace the stored bytes of the latest attempt with bytes no protobuf parser accepts."""
    record = tx.rollout(rollout_id)
    tx.txn.put(attempt_key(record.num, record.attempts), b"\xff\xff\xff\xff", db=tx.dbs.attempts)


def corrupt_worker(tx: Tx, worker_id: str) -> None:
    tx.txn.put(worker_id.encode(), b"\xff\xff\xff\xff", db=tx.dbs.workers)
