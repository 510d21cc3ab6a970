"""A watchdog failure for one attempt never affects another attempt, nor the start-up.

The records that break the watchdog are written straight into LMDB (``support.store_surgery``):
agl-server refuses such values at its edge, but a data directory written by an older release or
damaged on disk may still hold them.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import timestamp_pb2
from support.store_surgery import corrupt_latest_attempt, corrupt_worker, edit_latest_attempt, surgery

from agl_core.client import GrpcStore
from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_server.process import ServerProcess

OUT_OF_RANGE = {
    "bad-future": timestamp_pb2.Timestamp(seconds=253402300800),  # one second past 9999-12-31
    "bad-nanos": timestamp_pb2.Timestamp(seconds=1, nanos=-1),
}


async def test_bad_records_neither_stall_other_attempts_nor_the_start_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, log_path=tmp_path / "server.log").start()
    names = ["healthy", "bad-future", "bad-nanos", "bad-worker", "bad-attempt"]
    try:
        async with GrpcStore(server.address) as store:
            await store.enqueue_rollouts([{"input": name, "rollout_id": name} for name in names])
            # One claim: every attempt starts in the same transaction, so all share one deadline
            # and reach the watchdog in the same tick.
            claimed = await store.dequeue_rollouts(limit=len(names), worker_id="w-good")
            assert sorted(r.rollout_id for r in claimed) == sorted(names)
        server.stop()

        def one_second_deadline(record, attempt) -> None:  # type: ignore[no-untyped-def]
            record.pb.config.unresponsive_seconds = 1

        with surgery(data) as tx:
            for name in names:
                edit_latest_attempt(tx, name, one_second_deadline)
            for name, stamp in OUT_OF_RANGE.items():
                edit_latest_attempt(tx, name, lambda _r, a, stamp=stamp: a.last_heartbeat_time.CopyFrom(stamp))

            def to_bad_worker(_record, attempt) -> None:  # type: ignore[no-untyped-def]
                attempt.worker_id = "w-bad"

            edit_latest_attempt(tx, "bad-worker", to_bad_worker)
            corrupt_worker(tx, "w-bad")  # expiring this attempt fails when it updates its worker
            corrupt_latest_attempt(tx, "bad-attempt")  # this one cannot even be re-armed

        # Before the fix agl-server exited here, in _rearm_watchdog ("Timestamp is not valid").
        server.restart()
        async with GrpcStore(server.address) as store:
            # All deadlines passed while the server was down: everything due fires in the first tick.
            response = await store.backend.wait_for_rollouts(
                _wait(["healthy", "bad-nanos"], timeout=60)  # generous: the machine may be loaded
            )
            assert not response.pending_rollout_ids, server.log_tail()
            for rollout in response.rollouts:
                assert rollout.status == t.ROLLOUT_STATUS_FAILED
                assert rollout.attempt.status == t.ATTEMPT_STATUS_UNRESPONSIVE
            # The attempt whose heartbeat lies in the year 9999 is not due; it still reads back.
            future = (await store.backend.get_rollout(s.GetRolloutRequest(rollout_id="bad-future"))).rollout
            assert future.status == t.ROLLOUT_STATUS_PREPARING
            assert future.attempt.last_heartbeat_time.seconds == 253402300800
        log = (tmp_path / "server.log").read_text()
        assert "could not check attempt 1 of rollout number" in log and "'bad-worker'" in log
        assert "cannot read the latest attempt of rollout 'bad-attempt'" in log
        # And it starts again on the same directory.
        server.stop()
        server.restart()
        async with GrpcStore(server.address) as store:
            assert (await store.get_rollout("healthy")).status == "failed"  # type: ignore[union-attr]
    finally:
        server.stop()


def _wait(ids: list[str], timeout: float) -> s.WaitForRolloutsRequest:
    request = s.WaitForRolloutsRequest(rollout_ids=ids)
    request.timeout.FromNanoseconds(int(timeout * 1e9))
    return request
