"""What the watchdog does: expire due attempts, and re-arm every active attempt after a restart.

One bad record must never stop the watchdog for the others, nor the start-up: each due attempt
is expired in a nested transaction of its own (a failure rolls back only that attempt's writes
and is logged with its ids), and re-arming skips, with a log line, a rollout it cannot read.
Times are read with :func:`~agl_core.store.lmdb.records.timestamp_seconds`, which never raises,
so even a timestamp outside the range protobuf accepts yields a deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import lmdb

from agl_core.proto import types_pb2 as t
from agl_core.store import rules
from agl_core.store.lmdb.records import Effects, RolloutRecord, Tx, attempt_deadline, expired_status
from agl_core.store.lmdb.scans import status_nums
from agl_core.store.lmdb.schema import Databases
from agl_core.store.lmdb.watchdog import Watchdog

logger = logging.getLogger(__name__)

ACTIVE_ROLLOUT = (t.ROLLOUT_STATUS_PREPARING, t.ROLLOUT_STATUS_RUNNING)


def rearm(txn: lmdb.Transaction, dbs: Databases, watchdog: Watchdog) -> tuple[int, int]:
    """Arm ``watchdog`` with the deadline of the latest attempt of every active rollout on disk.

    Returns (attempts armed, rollouts skipped because their records could not be read).
    """
    armed = skipped = 0
    tx = Tx(txn, dbs)
    for status in ACTIVE_ROLLOUT:
        for num in status_nums(txn, dbs, status):
            record: RolloutRecord | None = None
            try:
                record = tx.rollout_by_num(num)
                latest = tx.latest_attempt(record) if record else None
                if record is None or latest is None:
                    continue
                deadline = attempt_deadline(record.pb.config, latest)
            except Exception as exc:
                skipped += 1
                logger.error(
                    "watchdog: cannot read the latest attempt of rollout %s (number %d), so its timeouts are not "
                    "watched: %s: %s",
                    repr(record.pb.rollout_id) if record else "?",
                    num,
                    type(exc).__name__,
                    exc,
                )
                continue
            if deadline is not None:
                watchdog.arm(deadline, num, latest.sequence_id)
                armed += 1
    return armed, skipped


def expire_op(env: lmdb.Environment, dbs: Databases, due: list[tuple[int, int]]) -> Callable[[Tx], None]:
    """The write operation that applies TIMEOUT / UNRESPONSIVE to the due (rollout num, attempt seq)."""

    def op(tx: Tx) -> None:
        assert tx.effects is not None
        for num, seq in due:
            effects = Effects()
            try:
                with env.begin(write=True, parent=tx.txn) as child:
                    sub = Tx(child, dbs, effects, tx.now_ns)
                    _expire_one(sub, num, seq)
                    sub.flush()
            except lmdb.MapFullError:
                raise  # the writer grows the map and runs the whole group again
            except Exception as exc:
                logger.error(
                    "watchdog: could not check attempt %d of rollout number %d (%s); other attempts are not "
                    "affected: %s: %s",
                    seq,
                    num,
                    _rollout_id(tx, num),
                    type(exc).__name__,
                    exc,
                )
                continue
            tx.effects.merge(effects)

    return op


def _expire_one(tx: Tx, num: int, seq: int) -> None:
    record = tx.rollout_by_num(num)
    if record is None or seq != record.attempts or record.pb.status in rules.TERMINAL_ROLLOUT:
        return
    attempt = tx.attempt(num, seq)
    if attempt.status not in rules.ACTIVE_ATTEMPT:
        return
    status = expired_status(record.pb.config, attempt, tx.now)
    if status is None:
        tx.watch(record, attempt)  # a heartbeat moved the deadline: look again then
    else:
        tx.set_attempt_status(record, attempt, status)


def _rollout_id(tx: Tx, num: int) -> str:
    try:
        raw = tx.txn.get(num.to_bytes(8, "big"), db=tx.dbs.rollout_nums)
    except Exception:
        raw = None
    return f"rollout {raw.decode(errors='replace')!r}" if raw else "rollout unknown"
