"""Keeping the LMDB map's resident pages within a budget.

LMDB reads through a read-only shared memory map of the data file. Every page the process
touches (the B-tree pages a write walks, the spans a query reads) stays mapped, so the
process's resident set grows with the data it has seen, although those pages are only the
kernel's page cache. Operators read that as a leak, and container memory limits count it. When
the file-backed resident set passes a budget, the map's pages are released with
``madvise(MADV_DONTNEED)``: for a shared file mapping this only drops them from this process's
page tables; the data stays in the file and the page cache, and the next access maps it again.

Linux only; elsewhere :class:`ResidentTrimmer` does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

logger = logging.getLogger(__name__)

MADV_DONTNEED = 4


def file_backed_rss() -> int:
    """Bytes of file-backed memory resident in this process (``RssFile``), or 0 if unknown."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"RssFile:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class ResidentTrimmer:
    """Releases the mapped pages of ``data_file`` whenever file-backed RSS exceeds ``budget`` bytes."""

    def __init__(self, data_file: str, budget: int) -> None:
        self.data_file = os.path.realpath(data_file)
        self.budget = budget
        self.trims = 0
        self._madvise = None
        if budget > 0 and sys.platform.startswith("linux"):
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            libc.madvise.restype = ctypes.c_int
            self._madvise = libc.madvise

    @property
    def active(self) -> bool:
        return self._madvise is not None

    def maybe_trim(self) -> bool:
        """Trim if over budget; returns whether it did."""
        if self._madvise is None or file_backed_rss() <= self.budget:
            return False
        released = 0
        for start, end in self._mappings():
            if self._madvise(start, end - start, MADV_DONTNEED) == 0:
                released += end - start
            else:
                logger.warning("madvise on the LMDB map failed: %s", os.strerror(ctypes.get_errno()))
        self.trims += 1
        return released > 0

    def _mappings(self) -> list[tuple[int, int]]:
        ranges = []
        try:
            with open("/proc/self/maps") as maps:
                for line in maps:
                    parts = line.split(maxsplit=5)
                    # Only the read-only shared map of the data file: LMDB's own map.
                    if len(parts) == 6 and parts[5].strip() == self.data_file and parts[1].startswith("r--s"):
                        start, end = (int(x, 16) for x in parts[0].split("-"))
                        ranges.append((start, end))
        except OSError:
            pass
        return ranges
