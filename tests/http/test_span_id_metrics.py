"""/metrics shows the span-id filters (which recognise resent spans) of a real agl-server, and
``--span-id-filter-mb`` bounds their memory: past it the least recently written attempts' filters
are dropped and read from the log again when written."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from support.http_listener import listening_server, scrape

from agl_core.client import GrpcStore
from agl_core.store.lmdb import span_path
from agl_core.types import new_span
from agl_server.process import ServerProcess

# A filter takes at least 4,096 bits (512 bytes): room for two of them.
BUDGET_MB = 1200 / 2**20


@pytest.fixture
def small_budget_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with listening_server(tmp_path, "--span-id-filter-mb", repr(BUDGET_MB)) as process:
        yield process


async def test_filters_stay_within_the_budget_and_are_rebuilt_when_written_again(
    small_budget_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    before = await scrape(http, small_budget_server)
    assert before["agl_span_id_filter_budget_bytes"] == int(BUDGET_MB * 2**20)
    assert before["agl_span_id_filters"] == before["agl_span_id_filter_rebuilds_total"] == 0
    async with GrpcStore(small_budget_server.address) as store:
        rollouts = [await store.start_rollout({"n": i}) for i in range(4)]
        spans = [
            new_span("step", rollout_id=r.rollout_id, attempt_id=r.attempt.attempt_id)  # type: ignore[union-attr]
            for r in rollouts
        ]
        for span in spans:  # one write per attempt, each its first: four filters made, two kept
            assert (await store.add_spans([span])).accepted == 1
        after_first = await scrape(http, small_budget_server)
        assert after_first["agl_span_id_filter_rebuilds_total"] == 4
        assert after_first["agl_span_id_filters"] == 2
        assert 0 < after_first["agl_span_id_filter_bytes"] <= after_first["agl_span_id_filter_budget_bytes"]

        # The first attempt's filter was dropped: resending its span reads its log again, and the
        # span is still recognised.
        assert (await store.add_spans([spans[0]])).duplicates == 1
    resent = await scrape(http, small_budget_server)
    assert resent["agl_span_id_filter_rebuilds_total"] == 5
    assert resent["agl_span_id_exact_checks_total"] >= 1
    assert resent["agl_span_id_filter_grows_total"] == 0


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_budget_that_is_not_positive_is_refused(tmp_path: Path, value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agl_server", "--data-dir", str(tmp_path / "d"), "--span-id-filter-mb", value],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "agl-server: --span-id-filter-mb must be positive" in result.stderr


@pytest.mark.parametrize("loop", ["compiled", "python"])
async def test_metrics_say_which_span_loop_the_writer_runs(
    tmp_path: Path, http: aiohttp.ClientSession, loop: str
) -> None:
    # AGL_SPAN_LOOP picks the store writer's span loop (agl_core/store/lmdb/span_path.py); an
    # operator comparing two servers, or a bench comparing the loops, reads which one runs here.
    if loop == "compiled" and not span_path.compiled_available():
        pytest.skip("the compiled span loop is not built in this install (no C compiler at pip install)")
    with listening_server(tmp_path, env={**os.environ, "AGL_SPAN_LOOP": loop}) as server:
        samples = await scrape(http, server)
        assert samples[f"agl_store_span_loop_info{{loop={loop}}}"] == 1
        async with GrpcStore(server.address) as store:  # and it stores spans
            rollout = await store.start_rollout({"n": 1})
            span = new_span("step", rollout_id=rollout.rollout_id, attempt_id=rollout.attempt.attempt_id)  # type: ignore[union-attr]
            assert (await store.add_spans([span, span])).accepted == 1
            assert [s.sequence_id for s in await store.query_spans(rollout.rollout_id)] == [1]
