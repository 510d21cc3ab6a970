"""Holding the store's writer inside an operation, so that the writes queued meanwhile wait and
the writer takes them together as its next group (tests/unit/test_writer_groups.py)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

import lmdb

from agl_core.store.lmdb.writer import Writer


@contextlib.asynccontextmanager
async def writer_held(writer: Writer[Any]) -> AsyncIterator[asyncio.Future[Any]]:
    """The writer is inside an operation of its own while the block runs, and is let go when it
    ends; yields that operation's future (it resolves once its group has committed)."""
    held, release = threading.Event(), threading.Event()

    def hold(txn: lmdb.Transaction, effects: Any) -> None:
        held.set()
        assert release.wait(30), "the test never released the writer"

    blocker = writer.submit(hold)
    try:
        assert await asyncio.to_thread(held.wait, 30), "the writer never ran the holding operation"
        yield blocker
    finally:
        release.set()
