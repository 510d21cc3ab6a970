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

READ_THREADS = 4


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
