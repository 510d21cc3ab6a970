"""``agl store backup DEST``: a compacted, consistent copy of the server's store, written on this machine.

The server copies its store from one read snapshot, leaving out free pages, while it keeps
serving, and streams the copy here; it lands in DEST/data.mdb once its length and SHA-256
check out. To restore, stop the server and start it on the copy: ``agl-server --data-dir DEST``
(see docs/operations-data.md).

With --json: ``{"path", "bytes", "sha256", "seconds"}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from agl_core.cli import output
from agl_core.cli.connect import EXIT_USAGE, CliError, with_store
from agl_core.client import GrpcStore
from agl_core.errors import FailedPreconditionError
from agl_core.store.backup_file import BackupInfo, prepare


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dest", type=Path, metavar="DEST", help="a new (or empty) directory for the copy")


def run(args: argparse.Namespace) -> int:
    try:
        prepare(args.dest)
    except FailedPreconditionError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    started = time.monotonic()

    async def body(store: GrpcStore) -> BackupInfo:
        return await store.backup(args.dest)

    info = with_store(args, body)
    seconds = time.monotonic() - started
    if args.json:
        output.print_json({"path": str(info.path), "bytes": info.bytes, "sha256": info.sha256, "seconds": seconds})
    else:
        print(f"backup written to {info.path} ({info.bytes} bytes, sha256 {info.sha256[:16]}...) in {seconds:.1f}s")
        print(f"restore: stop agl-server, then start it with --data-dir {info.path.parent}")
    return 0
