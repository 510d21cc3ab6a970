"""BackupStore: a compacted, consistent copy of the data file, streamed while the store runs.

The copy is LMDB's own compacting copy of one read snapshot (free pages left out, pages
renumbered), made by a child process (``compact_copy.py`` says why, ``spawned.py`` how it is
started) and read from its stdout in chunks. The last message carries the length and SHA-256 of
the whole copy, so a client knows it got all of it. A caller that goes away ends the child; LMDB
clears the reader slot it leaves.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sys
from collections.abc import AsyncIterator

from agl_core.errors import InternalError
from agl_core.proto import store_pb2 as s
from agl_core.store.lmdb import compact_copy
from agl_core.store.lmdb.core import LmdbCore
from agl_core.store.lmdb.spawned import SpawnedChild

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


class BackupMixin(LmdbCore):
    """BackupStore."""

    async def backup_store(self, request: s.BackupStoreRequest) -> AsyncIterator[s.BackupStoreResponse]:
        digest = hashlib.sha256()
        total = 0
        async for chunk in self.compact_copy():
            digest.update(chunk)
            total += len(chunk)
            yield s.BackupStoreResponse(data=chunk)
        yield s.BackupStoreResponse(done=True, total_bytes=total, sha256=digest.digest())

    async def compact_copy(self) -> AsyncIterator[bytes]:
        """The compacted copy of the data file, in chunks of up to ``CHUNK_BYTES``."""
        self._ensure_started()
        child = await SpawnedChild.spawn([sys.executable, compact_copy.__file__, self.path])
        finished = False
        try:
            while chunk := await child.read(CHUNK_BYTES):
                yield chunk
            code, errors = await child.finish()
            if code != 0:
                why = errors.decode(errors="replace").strip() or f"the copy process ended with status {code}"
                raise InternalError(
                    f"the compacting copy of {self.path!r} failed: {why}; check the disk and the server log, "
                    "then try again"
                )
            finished = True
        finally:
            if not finished and child.returncode is None:
                await asyncio.shield(child.kill())
                # The killed child's read transaction would keep its snapshot's pages from reuse.
                self.env.reader_check()
