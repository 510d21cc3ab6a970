"""Store statistics: counts by sub-database and status, data file and map size."""

from __future__ import annotations

from agl_core.proto import store_pb2 as s
from agl_core.store import rules
from agl_core.store.lmdb import rollout_index
from agl_core.store.lmdb.core import LmdbCore
from agl_core.store.lmdb.schema import MetaKey, read_counter
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
        info = self.env.info()
        stat = self.env.stat()
        response = s.GetStatsResponse(
            rollouts_by_status=by_status,
            rollouts=entries["rollouts"],
            attempts=entries["attempts"],
            spans=entries["spans"],
            resources=entries["resources"],
            workers=entries["workers"],
            queue_length=by_status["queuing"] + by_status["requeuing"],
            data_bytes=(info["last_pgno"] + 1) * stat["psize"],
            map_size_bytes=info["map_size"],
            last_event_id=last_event,
            backend=self.name,
        )
        response.start_time.FromNanoseconds(int(self.start_time * 1e9))
        return response
