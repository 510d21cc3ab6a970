"""The retention policy of agl-server: old finished rollouts disappear in the background, with their
spans; unfinished ones and recent ones stay; bad flags stop the server with the fix."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.waits import until

from agl_core import new_span
from agl_core.client import GrpcStore
from agl_server.cli import build_parser, config_from_args
from agl_server.process import ServerProcess


async def test_retention_deletes_old_finished_rollouts_in_the_background(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data",
        args=["--retention", "1s", "--retention-interval", "0.2s", "--retention-statuses", "succeeded,cancelled"],
        log_path=tmp_path / "server.log",
    ).start()
    try:
        async with GrpcStore(server.address) as store:
            old = await store.start_rollout("old")
            attempt_id = old.attempt.attempt_id  # type: ignore[union-attr]
            await store.add_spans(
                [new_span(f"s{i}", rollout_id=old.rollout_id, attempt_id=attempt_id) for i in range(10)]
            )
            await store.update_attempt(old.rollout_id, attempt_id, status="succeeded")
            failed = await store.start_rollout("failed, not in the policy's statuses")
            await store.update_rollout(failed.rollout_id, status="failed")
            running = await store.start_rollout("still running")
            queued = await store.enqueue_rollout("queued")

            async def old_gone() -> bool:
                return await store.get_rollout(old.rollout_id) is None

            await until(old_gone, timeout=60, what="retention deleting a rollout that ended over 1s ago")
            assert (await store.stats())["spans"] == 0
            # Running, queued and failed (not listed in --retention-statuses) rollouts outlive it.
            remaining = {r.rollout_id for r in await store.query_rollouts()}
            assert remaining == {failed.rollout_id, running.rollout_id, queued.rollout_id}

            # A rollout that ends now is kept until it is older than the policy's age.
            fresh = await store.start_rollout("fresh")
            await store.update_rollout(fresh.rollout_id, status="cancelled")
            ended = time.monotonic()

            async def fresh_gone() -> bool:
                return await store.get_rollout(fresh.rollout_id) is None

            await until(fresh_gone, timeout=60, what="retention deleting the second rollout")
            assert time.monotonic() - ended >= 0.9  # never before its age (server and test share the clock)
        assert "retention: deleted 1 rollouts" in server.log_path.read_text()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--retention", "7x"], "'7x' is not a positive duration"),
        (["--retention=-1d"], "is not a positive duration"),
        (["--retention", "0s"], "is not a positive duration"),
        (["--retention", "7d", "--retention-statuses", "running"], "deletes only finished rollouts"),
        (["--retention", "7d", "--retention-statuses", "done"], "'done' is not a rollout status"),
        (["--retention-interval", "1m"], "need --retention AGE"),
    ],
)
def test_bad_retention_flags_stop_the_server_with_the_fix(flags: list[str], fragment: str) -> None:
    with pytest.raises(SystemExit) as info:
        config_from_args(build_parser().parse_args(flags))
    assert fragment in str(info.value)


def test_retention_flags_make_a_policy() -> None:
    config = config_from_args(build_parser().parse_args(["--retention", "12h", "--retention-statuses", "failed"]))
    assert config.retention is not None
    assert config.retention.max_age == 12 * 3600 and config.retention.interval == 600
    assert config.retention.request().status_in == [4]
