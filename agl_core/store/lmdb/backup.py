"""BackupStore: a compacted, consistent copy of the data file, streamed while the store runs.

The copy is LMDB's own compacting copy of one read snapshot (free pages left out, pages
renumbered), made by a child process (``compact_copy.py`` says why) and read from its stdout in
chunks. The last message carries the length and SHA-256 of the whole copy, so a client knows it
got all of it. A caller that goes away ends the child; LMDB clears the reader slot it leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import sys
from collections.abc import AsyncIterator

from agl_core.errors import InternalError
from agl_core.proto import store_pb2 as s
from agl_core.store.lmdb import compact_copy
from agl_core.store.lmdb.core import LmdbCore

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
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            compact_copy.__file__,
            self.path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert child.stdout is not None and child.stderr is not None
        finished = False
        try:
            while chunk := await child.stdout.read(CHUNK_BYTES):
                yield chunk
            errors = await child.stderr.read()
            if await child.wait() != 0:
                raise InternalError(
                    f"the compacting copy of {self.path!r} failed: {errors.decode(errors='replace').strip()}; "
                    "check the disk and the server log, then try again"
                )
            finished = True
        finally:
            if not finished and child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                await child.wait()
                # The killed child's read transaction would keep its snapshot's pages from reuse.
                self.env.reader_check()
