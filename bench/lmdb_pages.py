"""Which tree of an LMDB environment owns each page of its data file, read from the file itself.

py-lmdb shows an environment as keys and values; what a commit costs on a disk with slow syncs is
the pages it writes and how scattered they are (``bench/commit_pages_bench.py``). LMDB never
writes over a page of the last committed snapshot (copy on write), so the pages a commit wrote are
those its snapshot owns that the snapshot before it did not: this walks every tree of one snapshot
and returns the owner of each page it reaches.

It reads LMDB 0.9's on-disk format on a 64-bit build (``mdb.c``): two meta pages (the newer, by
transaction id, is the snapshot), the free-page tree and the main tree rooted there, and each
named database's tree rooted in the main tree's ``F_SUBDATA`` nodes. Values too large for a leaf
page live in overflow pages (``F_BIGDATA``), owned by the tree whose leaf points at them.
``DUPSORT`` databases are not read (agl opens none): a duplicate node raises.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import Any

PAGE_HEADER = 16  # pgno (8), pad (2), flags (2), lower and upper (2 + 2) or overflow pages (4)
P_BRANCH, P_LEAF2 = 0x01, 0x20
F_BIGDATA, F_SUBDATA, F_DUPDATA = 0x01, 0x02, 0x04
P_INVALID = (1 << 64) - 1
# MDB_db: pad (4), flags (2), depth (2), branch, leaf and overflow page counts, entries, root (8 each)
_DB = struct.Struct("<IHHQQQQQ")
_META = struct.Struct("<IIQQ")  # magic, version, address, map size; then the two MDB_db, last page, txnid
_NODE = struct.Struct("<HHHH")  # lo, hi, flags, key size
# A reserve must end a run with at least this many pages never reached (1 MiB: a few dozen commits'
# worth), or the run's last commits may have written scattered pages again.
RESERVE_LEFT_PAGES = 256
MAGIC = 0xBEEFC0DE
DATA_VERSION = 1  # MDB_DATA_VERSION of LMDB 0.9
FREE, MAIN = "(free pages)", "(main)"


def page_owners(data_file: str | Path, page_size: int) -> dict[int, str]:
    """Page number -> the name of the tree that owns it in the newest committed snapshot:
    ``FREE`` (LMDB's record of free pages), ``MAIN`` (the names of the databases) or a database's
    name. Pages in no tree (free, or past the last page) are absent. ``page_size``: the
    environment's (``env.stat()["psize"]``, the OS page size LMDB 0.9 takes)."""
    with open(data_file, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        free_root, main_root = _newest_roots(data, page_size)
        owners: dict[int, str] = {}
        _walk(data, page_size, free_root, FREE, owners, None)
        named: list[tuple[str, int]] = []
        _walk(data, page_size, main_root, MAIN, owners, named)
        for name, root in named:
            _walk(data, page_size, root, name, owners, None)
        return owners


def _newest_roots(data: mmap.mmap, page_size: int) -> tuple[int, int]:
    metas = []
    for pgno in (0, 1):
        base = pgno * page_size + PAGE_HEADER
        magic, version, _, _ = _META.unpack_from(data, base)
        if magic != MAGIC or version != DATA_VERSION:
            raise ValueError(f"page {pgno} is not an LMDB 0.9 meta page (magic {magic:#x}, version {version})")
        free_db = _DB.unpack_from(data, base + _META.size)
        main_db = _DB.unpack_from(data, base + _META.size + _DB.size)
        txnid = struct.unpack_from("<Q", data, base + _META.size + 2 * _DB.size + 8)[0]
        metas.append((txnid, free_db[7], main_db[7]))
    _, free_root, main_root = max(metas)
    return free_root, main_root


def _walk(
    data: mmap.mmap, page_size: int, root: int, owner: str, owners: dict[int, str], named: list[tuple[str, int]] | None
) -> None:
    """Mark every page of the tree at ``root`` as ``owner``'s; with ``named``, collect the roots of
    the databases its leaves name (the main tree)."""
    if root == P_INVALID:
        return
    stack = [root]
    while stack:
        pgno = stack.pop()
        owners[pgno] = owner
        base = pgno * page_size
        flags = struct.unpack_from("<H", data, base + 10)[0]
        lower = struct.unpack_from("<H", data, base + 12)[0]
        if flags & P_LEAF2:
            raise ValueError(f"page {pgno} of {owner!r} holds fixed-size duplicates (DUPSORT is not read)")
        for i in range((lower - PAGE_HEADER) // 2):
            node = base + struct.unpack_from("<H", data, base + PAGE_HEADER + 2 * i)[0]
            lo, hi, node_flags, key_size = _NODE.unpack_from(data, node)
            if flags & P_BRANCH:
                stack.append(lo | hi << 16 | node_flags << 32)
                continue
            value = node + _NODE.size + key_size
            if node_flags & F_DUPDATA:
                raise ValueError(f"{owner!r} has duplicate values (DUPSORT is not read)")
            if node_flags & F_BIGDATA:
                first = struct.unpack_from("<Q", data, value)[0]
                count = struct.unpack_from("<I", data, first * page_size + 12)[0]
                owners.update(dict.fromkeys(range(first, first + count), owner))
            elif node_flags & F_SUBDATA and named is not None:
                key = bytes(data[node + _NODE.size : value]).decode()
                named.append((key, _DB.unpack_from(data, value)[7]))


def written_pages(before: dict[int, str], after: dict[int, str]) -> dict[str, list[int]]:
    """The pages of ``after``'s snapshot that ``before``'s did not own (the pages the commits in
    between wrote and still in use), by tree, in order."""
    written: dict[str, list[int]] = {}
    for pgno, owner in sorted(after.items()):
        if before.get(pgno) != owner:
            written.setdefault(owner, []).append(pgno)
    return written


def runs(pages: list[int]) -> int:
    """Runs of consecutive page numbers in ``pages`` (sorted): LMDB writes each run with one call,
    and each is a separate request to the disk."""
    return sum(1 for i, pgno in enumerate(pages) if i == 0 or pages[i - 1] != pgno - 1)


def make_reserve(env: Any, megabytes: int) -> int:
    """Store a value of ``megabytes`` MiB in ``env`` (py-lmdb's environment) and delete it: LMDB's
    free list then starts with one contiguous run of pages over blocks already written, which it
    uses lowest first before any page freed later (a what-if, never a setting). Returns the data
    file's size, where the run ends. The map must have room for it."""
    with env.begin(write=True) as txn:
        txn.put(b"~bench-reserve", bytes(megabytes << 20))
    with env.begin(write=True) as txn:
        txn.delete(b"~bench-reserve")
    return os.path.getsize(Path(env.path()) / "data.mdb")


def unreached_reserve(data_file: str | Path, page_size: int, reserve_end: int) -> int:
    """How many pages just below ``reserve_end`` (bytes) no tree holds: for a reserve freed as the
    file's last pages (a what-if of ``bench/ack_sensitivity.py`` and ``bench/commit_pages_bench.py``),
    the pages never reached. LMDB takes a run of free pages lowest first and reads pages freed later
    only once it is used up, so pages at its top that no tree holds were never written. (Once it is
    used up, LMDB reuses the pages freed meanwhile, and the reserve's top pages hold what was
    written then.) Read it with no writer running."""
    owned = page_owners(data_file, page_size)
    last = reserve_end // page_size - 1
    top = last
    while top >= 2 and top not in owned:
        top -= 1
    return last - top
