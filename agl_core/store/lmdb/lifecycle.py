"""Attempts and the rollout lifecycle: new attempts, updates of rollouts and attempts (the rules
in ``rules.py`` and ``records.py`` decide the statuses), and reading rollouts and attempts."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

import lmdb

from agl_core.errors import AglError, InvalidArgumentError
from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_core.store import filters, routing, rules, validation
from agl_core.store.lmdb import rollout_index
from agl_core.store.lmdb.core import LmdbCore
from agl_core.store.lmdb.records import RolloutRecord, Tx
from agl_core.store.lmdb.scans import all_rollouts, status_nums
from agl_core.store.lmdb.schema import MetaKey
from agl_core.types.values import check_value


class LifecycleMixin(LmdbCore):
    """Start attempts, update rollouts and attempts, read them back."""

    async def start_attempt(self, request: s.StartAttemptRequest) -> s.StartAttemptResponse:
        rollout_id = validation.require_id(request.rollout_id, "rollout_id")
        worker_id = validation.optional_id(request.worker_id, "worker_id")

        def op(tx: Tx) -> t.Rollout:
            record = tx.rollout(rollout_id)
            rules.check_new_attempt(rollout_id, record.pb.status)
            tx.new_attempt(record, worker_id)
            return tx.full_rollout(record)

        return s.StartAttemptResponse(rollout=await self._write(op))

    async def get_rollout(self, request: s.GetRolloutRequest) -> s.GetRolloutResponse:
        rollout_id = validation.require_id(request.rollout_id, "rollout_id")
        with self._begin() as txn:
            tx = Tx(txn, self.dbs)
            return s.GetRolloutResponse(rollout=tx.full_rollout(tx.rollout(rollout_id)))

    async def query_rollouts(self, request: s.QueryRolloutsRequest) -> s.QueryRolloutsResponse:
        limit, offset = validation.page(request.limit, request.offset)
        sort_by = validation.sort_field(request.sort_by, ("start_time", "end_time", "rollout_id", "status"))
        desc = validation.descending(request.order)
        statuses = filters.status_set(request, rules.ROLLOUT_STATUSES, "rollout")
        use_or = filters.is_or(request.filter_logic)
        predicates = filters.id_predicates(
            request.rollout_id_in, request.rollout_id_contains, lambda rec: rec.pb.rollout_id
        )
        indexed = not predicates and sort_by in ("start_time", "status")
        if statuses is not None:
            predicates.append(lambda rec: rec.pb.status in statuses)
        if request.mode:
            predicates.append(lambda rec: rec.pb.mode == request.mode)
        # OR of a status set and a mode is not one range of the rollout index.
        indexed = indexed and not (use_or and len(predicates) > 1)
        combined = filters.combine(predicates, request.filter_logic)
        namespace = None if request.all_namespaces else routing.namespace(request.namespace)

        def matches(rec: RolloutRecord) -> bool:
            # The namespace is a scope, not a filter: it holds whatever filter_logic says.
            in_scope = namespace is None or (rec.pb.namespace or routing.DEFAULT_NAMESPACE) == namespace
            return in_scope and combined(rec)

        def read(txn: lmdb.Transaction) -> s.QueryRolloutsResponse:
            tx = Tx(txn, self.dbs)
            # The rollout index knows no namespaces: it answers only while the scope is every rollout.
            scoped = namespace is not None and (
                namespace != routing.DEFAULT_NAMESPACE or txn.get(MetaKey.NAMESPACED, db=self.dbs.meta) is not None
            )
            if indexed and not scoped:
                # Status and mode filters, sorted by creation or status: the rollout index answers the
                # page and its counts the total, however many rollouts are stored.
                prefixes = rollout_index.groups(txn, self.dbs, statuses, request.mode or None)
                nums = rollout_index.page_nums(
                    txn, self.dbs, prefixes, by_status=sort_by == "status", desc=desc, offset=offset, limit=limit
                )
                page = [rec for rec in map(tx.rollout_by_num, nums) if rec is not None]
                total = rollout_index.total(txn, self.dbs, prefixes)
                return s.QueryRolloutsResponse(rollouts=[tx.full_rollout(rec) for rec in page], total=total)
            records: Iterable[RolloutRecord]
            # With AND, an id list or a status set narrows the scan through an index; OR scans all.
            if use_or or not predicates:
                records = all_rollouts(txn, self.dbs, tx)
            elif request.rollout_id_in:
                found = (tx.find_rollout(i) for i in dict.fromkeys(request.rollout_id_in) if i)
                records = sorted((rec for rec in found if rec is not None), key=lambda rec: rec.num)
            elif statuses is not None:
                nums = heapq.merge(*(status_nums(txn, self.dbs, st) for st in sorted(statuses)))
                records = (rec for rec in map(tx.rollout_by_num, nums) if rec is not None)
            else:
                records = all_rollouts(txn, self.dbs, tx)
            selected = [rec for rec in records if matches(rec)]
            if sort_by == "start_time":
                selected.sort(key=lambda rec: rec.num, reverse=desc)
            elif sort_by == "end_time":
                missing = float("inf") if not desc else float("-inf")
                selected.sort(
                    key=lambda rec: rec.pb.end_time.ToNanoseconds() if rec.pb.HasField("end_time") else missing,
                    reverse=desc,
                )
            elif sort_by == "rollout_id":
                selected.sort(key=lambda rec: rec.pb.rollout_id, reverse=desc)
            else:
                selected.sort(key=lambda rec: (rec.pb.status, rec.num), reverse=desc)
            page = selected[offset : offset + limit]
            return s.QueryRolloutsResponse(rollouts=[tx.full_rollout(rec) for rec in page], total=len(selected))

        # Off the event loop: a query the rollout index cannot answer reads every rollout.
        return await self._read(read)

    async def query_attempts(self, request: s.QueryAttemptsRequest) -> s.QueryAttemptsResponse:
        rollout_id = validation.require_id(request.rollout_id, "rollout_id")
        limit, offset = validation.page(request.limit, request.offset)
        desc = validation.descending(request.order)
        with self._begin() as txn:
            tx = Tx(txn, self.dbs)
            record = tx.rollout(rollout_id)
            seqs = list(range(1, record.attempts + 1))
            if desc:
                seqs.reverse()
            attempts = [tx.attempt(record.num, seq) for seq in seqs[offset : offset + limit]]
            return s.QueryAttemptsResponse(attempts=attempts, total=record.attempts)

    async def update_rollout(self, request: s.UpdateRolloutRequest) -> s.UpdateRolloutResponse:
        rollout_id = validation.require_id(request.rollout_id, "rollout_id")
        if request.HasField("input"):
            check_value(request.input, "input")
        if request.HasField("config"):
            rules.check_config(request.config)
        if request.HasField("mode") and request.mode not in rules.ROLLOUT_MODES:
            raise InvalidArgumentError(f"mode {request.mode} is not a RolloutMode")
        if request.HasField("status") and request.status not in rules.ROLLOUT_STATUSES:
            raise InvalidArgumentError(f"status {request.status} is not a rollout status")

        def op(tx: Tx) -> t.Rollout:
            record = tx.rollout(rollout_id)
            if request.HasField("status"):
                rules.check_rollout_transition(rollout_id, record.pb.status, request.status)
            if request.HasField("input"):
                tx.txn.put(
                    rollout_id.encode(), request.input.SerializeToString(deterministic=True), db=self.dbs.rollout_inputs
                )
            if request.HasField("mode"):
                tx.set_rollout_mode(record, request.mode)
            if request.HasField("resources_id"):
                record.pb.resources_id = request.resources_id
            if request.HasField("config"):
                record.pb.config.CopyFrom(request.config)
                record.pb.config.max_attempts = rules.max_attempts(request.config)
            if request.HasField("metadata"):
                record.pb.metadata.CopyFrom(request.metadata)
            tx.put_rollout(record)
            if request.HasField("status"):
                tx.set_rollout_status(record, request.status, None)
            return tx.full_rollout(record)

        return s.UpdateRolloutResponse(rollout=await self._write(op))

    async def update_attempt(self, request: s.UpdateAttemptRequest) -> s.UpdateAttemptResponse:
        rollout_id = validation.require_id(request.rollout_id, "rollout_id")
        attempt_id = validation.require_id(request.attempt_id, "attempt_id")
        if request.HasField("status") and request.status not in rules.ATTEMPT_STATUSES:
            raise InvalidArgumentError(
                f"status {request.status} is not an attempt status; use preparing, running, failed, succeeded, "
                "unresponsive or timeout"
            )

        def op(tx: Tx) -> t.Attempt:
            record = tx.rollout(rollout_id)
            attempt = tx.find_attempt(record, attempt_id)
            if request.HasField("status"):
                rules.check_attempt_transition(rollout_id, attempt.attempt_id, attempt.status, request.status)
            if request.HasField("worker_id"):
                attempt.worker_id = request.worker_id
            if request.HasField("last_heartbeat_time"):
                attempt.last_heartbeat_time.CopyFrom(request.last_heartbeat_time)
            if request.HasField("metadata"):
                attempt.metadata.CopyFrom(request.metadata)
            tx.put_attempt(record.num, attempt)
            if request.HasField("status"):
                tx.set_attempt_status(record, attempt, request.status)
            elif request.HasField("worker_id"):
                tx.sync_worker(attempt)
            return attempt

        return s.UpdateAttemptResponse(attempt=await self._write(op))

    async def heartbeat_attempts(self, beats: Sequence[tuple[str, str, int]]) -> list[AglError | None]:
        """Set the last heartbeat time of many attempts in one store operation, each beat a
        ``(rollout_id, attempt_id, time_ns)``, as :meth:`update_attempt` with only
        ``last_heartbeat_time`` does for one. agl-server refreshes the attempts its workers hold so
        at each heartbeat, many workers' at once. Each beat succeeds or fails alone (its attempt
        may be gone meanwhile): the answer holds, in order, None for each written and the error
        of each not."""
        outcomes: list[AglError | None] = [None] * len(beats)
        valid: list[tuple[int, str, str, int]] = []
        for i, (rollout_id, attempt_id, time_ns) in enumerate(beats):
            try:
                valid.append(
                    (
                        i,
                        validation.require_id(rollout_id, "rollout_id"),
                        validation.require_id(attempt_id, "attempt_id"),
                        time_ns,
                    )
                )
            except InvalidArgumentError as exc:
                outcomes[i] = exc

        def op(tx: Tx) -> list[tuple[int, AglError]]:
            failed: list[tuple[int, AglError]] = []
            for i, rollout_id, attempt_id, time_ns in valid:
                try:  # looked up before anything is written: a beat that fails writes nothing
                    record = tx.rollout(rollout_id)
                    attempt = tx.find_attempt(record, attempt_id)
                except AglError as exc:
                    failed.append((i, exc))
                    continue
                attempt.last_heartbeat_time.FromNanoseconds(time_ns)
                tx.put_attempt(record.num, attempt)
            return failed

        if valid:
            for i, error in await self._write(op):
                outcomes[i] = error
        return outcomes
