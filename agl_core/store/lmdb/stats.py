"""Store statistics: counts by sub-database and status, data file and map size."""

from __future__ import annotations

import os
from typing import Any

import lmdb

from agl_core.proto import store_pb2 as s
from agl_core.store import rules
from agl_core.store.lmdb import rollout_index
from agl_core.store.lmdb.core import LmdbCore
from agl_core.store.lmdb.schema import DATABASES, Databases, MetaKey, read_counter
from agl_core.store.rules import rollout_status_name


class StatsMixin(LmdbCore):
    """GetStats."""

    async def get_stats(self, request: s.GetStatsRequest) -> s.GetStatsResponse:
        with self._begin() as txn:
            entries = {
                name: txn.stat(getattr(self.dbs, name))["entries"]
                for name in ("rollouts", "attempts", "spans", "resources", "workers")
            }
            # From the rollout index's counts: no scan, however many rollouts are stored.
            counts = dict.fromkeys(sorted(rules.ROLLOUT_STATUSES), 0)
            for prefix in rollout_index.groups(txn, self.dbs, None, None):
                if prefix[0] in counts:
                    counts[prefix[0]] += rollout_index.total(txn, self.dbs, [prefix])
            by_status = {rollout_status_name(status): n for status, n in counts.items()}
            last_event = read_counter(txn, self.dbs.meta, MetaKey.LAST_EVENT_ID)
            used_pages = _used_pages(txn, self.dbs)
        info = self.env.info()
        stat = self.env.stat()
        used_pages += _pages(stat) + 2  # the main database (names of the others) and the two meta pages
        page = stat["psize"]
        high_water = (info["last_pgno"] + 1) * page
        file_bytes = _file_bytes(os.path.join(self.path, "data.mdb"))
        response = s.GetStatsResponse(
            rollouts_by_status=by_status,
            rollouts=entries["rollouts"],
            attempts=entries["attempts"],
            spans=entries["spans"],
            resources=entries["resources"],
            workers=entries["workers"],
            queue_length=by_status["queuing"] + by_status["requeuing"],
            data_bytes=high_water,
            file_bytes=file_bytes,
            used_pages=used_pages,
            used_bytes=used_pages * page,
            free_bytes=max(0, high_water - used_pages * page),
            page_size=page,
            map_size_bytes=info["map_size"],
            last_event_id=last_event,
            backend=self.name,
        )
        response.start_time.FromNanoseconds(int(self.start_time * 1e9))
        return response


def _pages(stat: dict[str, Any]) -> int:
    return int(stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"])


def _used_pages(txn: lmdb.Transaction, dbs: Databases) -> int:
    """Pages holding the data of every named sub-database. LMDB keeps the rest of the file up to its
    high-water mark on a free list, for reuse (py-lmdb does not expose the free list itself)."""
    return sum(_pages(txn.stat(getattr(dbs, name))) for name in DATABASES)


def _file_bytes(path: str) -> int:
    # One stat of a local file: no reason to leave the event loop for it.
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
