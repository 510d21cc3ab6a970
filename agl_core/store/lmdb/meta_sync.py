"""When a durable commit's meta page is synced: in the commit (LMDB's way, the default) or after it.

A durable LMDB commit writes the group's pages, syncs them, writes the meta page that makes them
the current snapshot and syncs that too, and the store writer waits for all of it before it can
run the next group. ``deferred`` (``AGL_META_SYNC=deferred``, ``LmdbStore(meta_sync="deferred")``,
where ``data_sync`` was built) opens the environment with the meta page's sync left out of the
commit (LMDB's ``MDB_NOMETASYNC``) and syncs the data file after the commit instead: inline when no
other write waits, else on a thread that never takes the GIL (:class:`DeferredSync`) while the
writer runs the next group. Each caller still hears of its write only once a sync begun after its
commit has finished, so an acknowledged write is as durable as with ``commit``. A crash of the
machine before that sync can undo the last commits, which nobody was told had succeeded; the
snapshot before them is intact (LMDB syncs a commit's pages before it writes its meta page, and
never reuses the pages of the two latest snapshots).

Why it is not the default: on the 2-core development machine, with the load generator on the
same cores, it made each commit shorter but the groups smaller, and the eight-writer ack latency
moved within the runs' spread (docs/server.md, "Durability"). It is for a server whose syncs are
slow or whose writer has cores to spare. Without ``sync`` there is nothing to defer.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import Any

from agl_core.errors import InternalError
from agl_core.threads import GilFreeThread

try:  # built by setup.py; optional, so an install without a C compiler still works
    from agl_core.store.lmdb.data_sync import DataSyncer  # type: ignore[import-not-found]
except ImportError:
    DataSyncer = None

logger = logging.getLogger(__name__)

MODES = ("deferred", "commit")
ENV = "AGL_META_SYNC"

# What a group's callers get: (group, [(ok, result or error)], effects), as Writer._deliver takes them.
Deliver = Callable[[list[Any], list[tuple[bool, Any]], list[Any]], None]


def deferred_available() -> bool:
    return DataSyncer is not None


def choose(sync: bool, name: str | None = None) -> str | None:
    """The mode named (``deferred`` or ``commit``; None: ``$AGL_META_SYNC``, else ``commit``), or
    None when commits are not synced at all. ValueError says what to give instead."""
    given = "meta_sync"
    if name is None and os.environ.get(ENV):
        name, given = os.environ[ENV], ENV
    if name is not None and name not in MODES:
        raise ValueError(f"{given}={name!r}: give 'deferred' or 'commit' (when a durable commit's meta page is synced)")
    if not sync:
        return None
    if name is None:
        return "commit"
    if name == "deferred" and DataSyncer is None:
        raise ValueError(
            f"{given}='deferred': the data syncer (agl_core.store.lmdb.data_sync) is not built in this install; "
            "reinstall agl with a C compiler present (pip install -e .), or give 'commit'"
        )
    return name


class DeferredSync:
    """The writer's committed groups, each handed to ``deliver`` on the event loop once a sync that
    covers its commit has finished, in commit order.

    :meth:`committed` runs on the writer thread after each commit; the syncer thread wakes the loop
    through an eventfd the loop watches. A failed sync fails every group not yet delivered and every
    later one (the store then takes no write as durable until it is restarted).
    """

    def __init__(self, data_file: str, loop: asyncio.AbstractEventLoop, deliver: Deliver) -> None:
        if DataSyncer is None:
            raise RuntimeError("agl_core.store.lmdb.data_sync is not built")
        self._syncer = DataSyncer(data_file)
        self._loop = loop
        self._deliver = deliver
        self._waiting: deque[tuple[int, list[Any], list[tuple[bool, Any]], list[Any]]] = deque()
        self._commits = 0  # written by the writer thread only
        # Commits synced by the writer itself (nothing else waited) and by the syncer thread (/metrics).
        self.inline = 0
        self.handed_off = 0
        self._thread = GilFreeThread(target=self._syncer.run, name="agl-lmdb-syncer")
        self._thread.start()
        self._fd = self._syncer.notify_fd
        loop.add_reader(self._fd, self._on_synced)

    # --- writer thread -----------------------------------------------------------------------------

    def committed(
        self, group: list[Any], outcomes: list[tuple[bool, Any]], effects: list[Any], others_waiting: bool
    ) -> None:
        """After a group's commit: sync on the syncer thread when ``others_waiting`` (the writer goes on
        with them meanwhile), else here, and have the loop deliver what the sync covers."""
        self._commits += 1
        self._waiting.append((self._commits, group, outcomes, effects))
        if others_waiting:
            self.handed_off += 1
            self._syncer.request(self._commits)
            return
        self.inline += 1
        self._syncer.sync_now(self._commits)
        try:
            self._loop.call_soon_threadsafe(self._on_synced)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    def stop(self) -> None:
        """After the writer's last group: finish the syncs asked for and end the syncer thread."""
        self._syncer.close()
        self._thread.join()

    # --- event loop thread -------------------------------------------------------------------------

    def _on_synced(self) -> None:
        synced, error = self._syncer.state()
        waiting = self._waiting
        while waiting and waiting[0][0] <= synced:
            _, group, outcomes, effects = waiting.popleft()
            self._deliver(group, outcomes, effects)
        if error and waiting:
            logger.error("syncing the store's data file failed: %s", os.strerror(error))
            failure = InternalError(
                f"the store could not sync its data file to disk ({os.strerror(error)}); the write may not be "
                "durable; check the data directory's disk and restart agl-server"
            )
            while waiting:
                _, group, _, _ = waiting.popleft()
                self._deliver(group, [(False, failure)] * len(group), [])

    def detach(self) -> None:
        """On the loop, after :meth:`stop`: deliver what is left and close the syncer's files."""
        self._loop.remove_reader(self._fd)
        self._on_synced()
        self._syncer.release()
