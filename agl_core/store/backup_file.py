"""Writing a BackupStore stream to a directory that agl-server (or ``LmdbStore``) opens as is.

The copy goes to ``DEST/data.mdb.partial`` and is renamed to ``DEST/data.mdb`` only once its length
and SHA-256 match what the server announced in the last message, so an interrupted backup never
leaves a file that looks complete. DEST gets the store's private modes (0700 directory, 0600 file).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from agl_core.errors import FailedPreconditionError, InternalError
from agl_core.proto import store_pb2 as s
from agl_core.store.lmdb.private import FILE_MODE, create_private_dir

DATA_FILE = "data.mdb"


@dataclass
class BackupInfo:
    """A finished backup: where its data file is, its size and SHA-256 (hex)."""

    path: Path
    bytes: int
    sha256: str


def prepare(dest: str | os.PathLike[str]) -> Path:
    """Check that ``dest`` can take a backup (absent or an empty directory) and create it."""
    path = Path(dest)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FailedPreconditionError(
            f"{str(path)!r} exists and is not an empty directory; give a new directory for the backup"
        )
    create_private_dir(str(path))
    return path


async def write(responses: AsyncIterator[s.BackupStoreResponse], dest: str | os.PathLike[str]) -> BackupInfo:
    """Write the stream to ``dest`` (see the module docstring); returns what was written."""
    path = prepare(dest)
    partial = path / (DATA_FILE + ".partial")
    digest = hashlib.sha256()
    total = 0
    last: s.BackupStoreResponse | None = None
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as out:
            async for response in responses:
                if response.data:
                    out.write(response.data)
                    digest.update(response.data)
                    total += len(response.data)
                if response.done:
                    last = response
                    break
            out.flush()
            os.fsync(out.fileno())
        if last is None:
            raise InternalError("the backup stream ended before its last message; run the backup again")
        if last.total_bytes != total or last.sha256 != digest.digest():
            raise InternalError(
                f"the backup arrived damaged ({total} bytes, the server sent {last.total_bytes}); run it again"
            )
        os.replace(partial, path / DATA_FILE)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupInfo(path / DATA_FILE, total, digest.hexdigest())
