"""Strategies wait for agl-server to see killed runners go before stopping it (agl_core.execution.departures)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from support.ledger import read_ledger
from support.raw_worker import RawWorker

from agl_core.client import GrpcStore
from agl_core.execution.departures import wait_killed_runners_gone, wait_workers_gone
from agl_core.proto import types_pb2 as t
from agl_core.types import AttemptStatus
from agl_server.process import ServerProcess


async def test_a_broken_stream_is_waited_for_and_its_attempt_given_up_before_the_server_stops(
    data_dir: Path,
) -> None:
    server = ServerProcess(data_dir, log_path=data_dir.parent / "server.log").start()
    try:
        store = GrpcStore(server.address)
        try:
            await store.enqueue_rollout({"n": 1}, rollout_id="held")
            worker = RawWorker(server.address)
            await worker.hello(worker_id="w-held")
            assignment = await worker.assignment()
            await worker.report(assignment, t.ATTEMPT_STATUS_RUNNING)
            # Connected: the wait runs out and names it; a worker that never registered is not waited for.
            assert await wait_workers_gone(store, ["w-held", "w-never"], timeout=0.2) == ["w-held"]
            # By prefix too (workers whose ids the caller cannot know, as restarted runners).
            assert await wait_workers_gone(store, [], timeout=0.2, id_prefix="w-h") == ["w-held"]
            assert await wait_workers_gone(store, [], timeout=0.2, id_prefix="held") == []
            await worker.close()  # the stream breaks, as when the runner's process is killed
            assert await wait_workers_gone(store, ["w-never"], timeout=60.0, id_prefix="w-") == []
        finally:
            await store.close()
    finally:
        server.stop()  # at once: no time for the server to catch up but what the wait gave it
    # The shutdown kept nothing running for a reconnect: the attempt was given up.
    ledger = await read_ledger(data_dir)
    assert [a.status for a in ledger.attempts["held"]] == [AttemptStatus.UNRESPONSIVE]
    assert ledger.workers["w-held"].status == "unknown"


def test_a_server_that_does_not_answer_is_logged_and_the_shutdown_goes_on(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = ServerProcess(data_dir).start()
    address = server.address
    server.stop()
    with caplog.at_level(logging.WARNING, logger="agl_core.execution.departures"):
        wait_killed_runners_gone(address, ["w-gone"], timeout=0.5)
    assert "could not ask agl-server whether the killed runners are gone" in caplog.text
