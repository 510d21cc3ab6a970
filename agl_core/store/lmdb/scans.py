"""Index scans shared by several parts of the backend."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lmdb

from agl_core.store.lmdb.records import RolloutRecord, Tx
from agl_core.store.lmdb.schema import STATUS_KEY


def status_nums(txn: lmdb.Transaction, dbs: Any, status: int) -> Iterable[int]:
    """Rollout numbers with ``status``, in creation order."""
    cursor = txn.cursor(db=dbs.status_index)
    prefix = bytes([status])
    if not cursor.set_range(prefix):
        return
    for key in cursor.iternext(values=False):
        if key[:1] != prefix:
            return
        yield STATUS_KEY.unpack(key)[1]


def all_rollouts(txn: lmdb.Transaction, dbs: Any, tx: Tx) -> Iterable[RolloutRecord]:
    for _, rollout_id in txn.cursor(db=dbs.rollout_nums):
        record = tx.find_rollout(rollout_id.decode())
        if record is not None:
            yield record
