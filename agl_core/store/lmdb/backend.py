"""The LMDB store backend: every store call, on protobuf messages, over one LMDB environment.

Writes are operations queued to the single :class:`Writer` (group commit, answered after the
commit); reads run directly on the event loop in short read transactions (LMDB readers never
block and never wait for the writer). Waiting calls (dequeue with a wait, wait-for-rollouts,
watch) sleep on events that commits fire, never poll.

The backend binds to the event loop it is first used on. Use :class:`agl_core.store.SyncStore`
(or one agl-server) to reach it from other threads or processes.

Each concern lives in its own module (a mixin over :class:`~agl_core.store.lmdb.core.LmdbCore`);
this class only puts them together.
"""

from __future__ import annotations

from agl_core.store.lmdb.backup import BackupMixin
from agl_core.store.lmdb.core import (
    DEFAULT_MAP_SIZE,
    DEFAULT_RESIDENT_BUDGET,
    DEFAULT_SPAN_ID_FILTER_BUDGET,
    LmdbCore,
    default_data_dir,
)
from agl_core.store.lmdb.deletion import DeletionMixin
from agl_core.store.lmdb.lifecycle import LifecycleMixin
from agl_core.store.lmdb.queueing import QueueMixin
from agl_core.store.lmdb.resources import ResourcesMixin
from agl_core.store.lmdb.spans import SpansMixin
from agl_core.store.lmdb.stats import StatsMixin
from agl_core.store.lmdb.waiting import WaitingMixin
from agl_core.store.lmdb.workers import WorkersMixin

__all__ = [
    "DEFAULT_MAP_SIZE",
    "DEFAULT_RESIDENT_BUDGET",
    "DEFAULT_SPAN_ID_FILTER_BUDGET",
    "LmdbBackend",
    "default_data_dir",
]


class LmdbBackend(
    QueueMixin,
    LifecycleMixin,
    ResourcesMixin,
    SpansMixin,
    WaitingMixin,
    WorkersMixin,
    StatsMixin,
    DeletionMixin,
    BackupMixin,
    LmdbCore,
):
    """The store on LMDB. ``LmdbBackend(path)`` opens (or creates) the data directory at once.

    :param path: the data directory.
    :param map_size: initial LMDB map size in bytes; the map doubles whenever it fills up.
    :param sync: fsync every commit (the default). ``False`` keeps data across a crash of the
        process but not of the machine.
    :param resident_budget: bytes of the data file the process may keep mapped before it releases
        them (see ``resident.py``); 0 never releases.
    :param span_id_filter_budget: bytes of memory for the attempts' span-id filters, which recognise
        resent spans (see ``span_ids.py``); beyond it the least recently written attempts' filters
        are dropped and rebuilt from their logs when written again.
    :param span_loop: ``"compiled"`` or ``"python"``: which span loop the writer runs
        (``span_path.py``; default ``$AGL_SPAN_LOOP``, else compiled where built).
    :param inline_commits: a lone stream's writes commit on the event loop (``writer.py``; default
        ``$AGL_INLINE_COMMITS``, else on).
    """
