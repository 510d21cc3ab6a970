"""Read transactions off the event loop, for reads that can take long.

A long read on the event loop thread stalls every other call of the server, so such reads run on
a small thread pool. LMDB forbids growing the map while a read transaction of this process is
open (its pages would move under it), so growing the map and closing the environment first wait,
through a :class:`ReadGate`, until no pooled read is running, and hold new ones back meanwhile.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import lmdb

READ_THREADS = 4


class ReadTransaction:
    """A read transaction whose LMDB reader slot is given back when its ``with`` block ends.

    py-lmdb keeps a read transaction's reader slot for as long as the ``Transaction`` object lives,
    even after it is committed or aborted (it resets the transaction to reuse it). A frame that
    still names the transaction keeps the slot taken: an exception raised inside the block holds
    that frame in its traceback, and once the exception sits in a reference cycle (as gRPC's
    error path leaves it), only a garbage collection frees it. agl-server collects rarely
    (tuning.py), so under a stream of failing reads (GetResources of a namespace without
    resources, polled by every worker) the environment's 1,024 slots ran out and every read of
    the server failed with MDB_READERS_FULL. The block gets this wrapper instead of the
    transaction, and its exit drops the wrapper's reference to the transaction: the only one,
    so the slot is free whatever keeps the frame. Cursors give theirs up when the transaction
    ends. ``get`` and ``cursor`` are the transaction's own methods (no extra call on hot paths).
    """

    __slots__ = ("_txn", "cursor", "get")

    def __init__(self, txn: lmdb.Transaction) -> None:
        self._txn: lmdb.Transaction | None = txn
        self.get: Any = txn.get
        self.cursor: Any = txn.cursor

    def __enter__(self) -> lmdb.Transaction:
        # Typed as the transaction it stands for: callers use it as one.
        return self  # type: ignore[return-value]

    def __exit__(self, *exc: object) -> None:
        txn, self._txn = self._txn, None
        self.get = self.cursor = None
        if txn is not None:
            txn.abort()  # a read has nothing to commit

    def __getattr__(self, name: str) -> Any:
        # Anything beyond get and cursor (stat, id, ...), while the block runs.
        txn = object.__getattribute__(self, "_txn")
        if txn is None:
            raise lmdb.Error(f"read transaction used after its block ended ({name})")
        return getattr(txn, name)


def begin_read(env: lmdb.Environment) -> ReadTransaction:
    """A read transaction of ``env`` for a ``with`` block (see :class:`ReadTransaction`)."""
    return ReadTransaction(env.begin())


class ReadGate:
    """Shared (reads) / exclusive (map growth, close) access to an environment's mapping."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._exclusive = False

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


def read_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="agl-lmdb-read")
