"""Waiting on rollouts: blocking waits for terminal statuses and the event-log watch stream.
Both sleep on events the commits fire; neither polls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from agl_core.errors import InvalidArgumentError
from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_core.store import routing, rules, validation
from agl_core.store.lmdb.core import LmdbCore
from agl_core.store.lmdb.records import Tx, fill_routing
from agl_core.store.lmdb.schema import U64, MetaKey, read_counter

EVENTS_PER_CHUNK = 256


class WaitingMixin(LmdbCore):
    """WaitForRollouts and WatchRollouts."""

    async def wait_for_rollouts(self, request: s.WaitForRolloutsRequest) -> s.WaitForRolloutsResponse:
        self._ensure_started()
        ids = list(dict.fromkeys(request.rollout_ids))
        for rollout_id in ids:
            validation.require_id(rollout_id, "rollout_ids[]")
        timeout = request.timeout.ToNanoseconds() / 1e9 if request.HasField("timeout") else None
        if timeout is not None and timeout < 0:
            raise InvalidArgumentError("timeout must not be negative")
        deadline = None if timeout is None else time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        while True:
            done, pending, unknown = self._terminal_split(ids)
            remaining = None if deadline is None else deadline - time.monotonic()
            if not pending or (remaining is not None and remaining <= 0) or self._closed:
                return s.WaitForRolloutsResponse(
                    rollouts=done, pending_rollout_ids=pending, unknown_rollout_ids=unknown
                )
            # Reading and registering happen with no await in between, so no commit slips through.
            waiters = []
            for rollout_id in pending:
                waiter = loop.create_future()
                self._terminal_waiters.setdefault(rollout_id, set()).add(waiter)
                waiters.append((rollout_id, waiter))
            try:
                await asyncio.wait([w for _, w in waiters], timeout=remaining)
            finally:
                for rollout_id, waiter in waiters:
                    registered = self._terminal_waiters.get(rollout_id)
                    if registered is not None:
                        registered.discard(waiter)
                        if not registered:
                            del self._terminal_waiters[rollout_id]

    def _terminal_split(self, ids: list[str]) -> tuple[list[t.Rollout], list[str], list[str]]:
        """(terminal rollouts, pending ids, pending ids of no rollout). An unknown id does not fail
        the wait: it stays pending (a rollout may still be created under it, and its end wakes the
        waiter like any other), and the finished known ones are answered all the same."""
        done: list[t.Rollout] = []
        pending: list[str] = []
        unknown: list[str] = []
        with self._begin() as txn:
            tx = Tx(txn, self.dbs)
            for rollout_id in ids:
                record = tx.find_rollout(rollout_id)
                if record is None:
                    pending.append(rollout_id)
                    unknown.append(rollout_id)
                elif record.pb.status in rules.TERMINAL_ROLLOUT:
                    done.append(tx.full_rollout(record))
                else:
                    pending.append(rollout_id)
        return done, pending, unknown

    def last_event_id(self) -> int:
        with self._begin() as txn:
            return read_counter(txn, self.dbs.meta, MetaKey.LAST_EVENT_ID)

    async def watch_rollouts(self, request: s.WatchRolloutsRequest) -> AsyncIterator[s.WatchRolloutsResponse]:
        """Stream status changes from the event log; a slow watcher lags on disk, not in memory."""
        self._ensure_started()
        if request.HasField("after_event_id") and request.after_event_id < 0:
            raise InvalidArgumentError("after_event_id must not be negative")
        ids = set(request.rollout_ids)
        statuses = set(request.status_in)
        namespace = None if request.all_namespaces else routing.namespace(request.namespace)
        last = request.after_event_id if request.HasField("after_event_id") else self.last_event_id()
        yield s.WatchRolloutsResponse(last_event_id=last)
        while not self._closed:
            changed = self._events_changed
            events, scanned_to, full = self._read_events(last, ids, statuses, namespace)
            if events or scanned_to != last:
                last = scanned_to
                yield s.WatchRolloutsResponse(events=events, last_event_id=last)
            if full:
                await asyncio.sleep(0)
                continue
            await changed.wait()

    def _read_events(
        self, after: int, ids: set[str], statuses: set[int], namespace: str | None
    ) -> tuple[list[t.RolloutEvent], int, bool]:
        events: list[t.RolloutEvent] = []
        scanned = 0
        with self._begin() as txn:
            cursor = txn.cursor(db=self.dbs.events)
            if not cursor.set_range(U64.pack(after + 1)):
                return events, after, False
            for key, raw in cursor:
                after = U64.unpack(key)[0]
                scanned += 1
                event = t.RolloutEvent.FromString(raw)
                if (
                    (not ids or event.rollout_id in ids)
                    and (not statuses or event.new_status in statuses)
                    and (namespace is None or (event.rollout.namespace or routing.DEFAULT_NAMESPACE) == namespace)
                ):
                    fill_routing(event.rollout)
                    stored_input = txn.get(event.rollout_id.encode(), db=self.dbs.rollout_inputs)
                    if stored_input:
                        event.rollout.input.ParseFromString(stored_input)
                    events.append(event)
                if scanned >= EVENTS_PER_CHUNK:
                    return events, after, True
        return events, after, False
