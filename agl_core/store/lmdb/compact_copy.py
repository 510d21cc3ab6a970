"""``python compact_copy.py DATA_DIR``: write a compacted copy of the LMDB data
file in DATA_DIR to stdout (LMDB's ``mdb_env_copyfd2`` with ``MDB_CP_COMPACT``).

agl-server runs this in a child process for BackupStore rather than in a thread of its own: the
copy holds a read transaction for as long as it runs, and while a process has a transaction open
LMDB does not let it grow its map, so an in-process copy of a large store would stall every write
that needs a bigger map. A read transaction of another process does not.
It runs as a script (by path) and imports nothing of agl, so the child starts in a blink.
"""

from __future__ import annotations

import sys

import lmdb

# More than the store's named databases; a read-only open only needs the handle table to fit them.
MAX_DBS = 64


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python compact_copy.py DATA_DIR > data.mdb", file=sys.stderr)
        return 2
    # The map size is taken from the file when it is larger than asked for.
    env = lmdb.open(argv[0], readonly=True, lock=True, max_dbs=MAX_DBS, create=False, readahead=False)
    try:
        env.copyfd(sys.stdout.fileno(), compact=True)
    except lmdb.Error as exc:
        print(f"compacting copy of {argv[0]!r} failed: {exc}", file=sys.stderr)
        return 1
    finally:
        env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
