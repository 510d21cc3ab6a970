"""Semantics the original store's tests expect: waits with unknown ids, span queries of attempts
that do not exist, new workers, OR filters, empty status sets, substring and span filters, span
paging with totals. Run on the embedded store and through a real agl-server (``store`` fixture).
"""

from __future__ import annotations

import asyncio

import pytest

from agl_core import LightningStore, NotFoundError, PromptTemplate, new_span
from agl_core.proto import store_pb2 as s
from agl_core.types import RolloutStatus, WorkerStatus

BOUND = 60.0  # generous: the machine may be loaded


async def test_wait_with_an_unknown_id_keeps_the_finished_known_ones(store: LightningStore) -> None:
    done = await store.start_rollout("done", rollout_id="done")
    await store.update_attempt(done.rollout_id, "latest", status="succeeded")
    finished = await store.wait_for_rollouts(["done", "no-such-rollout"], timeout=0.2)
    assert [r.rollout_id for r in finished] == ["done"]
    request = s.WaitForRolloutsRequest(rollout_ids=["done", "no-such-rollout"])
    request.timeout.FromMilliseconds(0)
    response = await store.backend.wait_for_rollouts(request)
    assert [r.rollout_id for r in response.rollouts] == ["done"]
    assert list(response.pending_rollout_ids) == ["no-such-rollout"]
    assert list(response.unknown_rollout_ids) == ["no-such-rollout"]

    # A rollout created under an id someone already waits for wakes the waiter when it ends.
    waiter = asyncio.create_task(store.wait_for_rollouts(["later"], timeout=BOUND))
    later = await store.start_rollout("later", rollout_id="later")
    await store.update_attempt(later.rollout_id, "latest", status="failed")
    assert [r.status for r in await asyncio.wait_for(waiter, BOUND)] == [RolloutStatus.FAILED]


async def test_spans_of_missing_attempts_are_empty(store: LightningStore) -> None:
    queued = await store.enqueue_rollout("not started")
    assert await store.query_spans(queued.rollout_id, "latest") == []  # before any attempt
    assert (await store.query_spans_page(queued.rollout_id, "latest")).total == 0
    started = await store.start_rollout("started")
    assert await store.query_spans(started.rollout_id, "at-no-such-attempt") == []
    assert await store.query_spans(started.rollout_id, queued.rollout_id) == []
    with pytest.raises(NotFoundError, match="no-such-rollout"):  # an unknown rollout is still named
        await store.query_spans("no-such-rollout")


async def test_a_new_worker_starts_unknown(store: LightningStore) -> None:
    fresh = await store.update_worker("fresh", heartbeat_stats={"load": 0.1})
    assert fresh.status == WorkerStatus.UNKNOWN
    told = await store.update_worker("told", status="busy")
    assert told.status == WorkerStatus.BUSY
    again = await store.update_worker("told", heartbeat_stats={"load": 0.2})
    assert again.status == WorkerStatus.BUSY  # an existing worker keeps its status


async def test_rollout_filters_combine_with_and_or_or(store: LightningStore) -> None:
    ok = await store.start_rollout("a", rollout_id="alpha-ok")
    await store.update_attempt(ok.rollout_id, "latest", status="succeeded")
    await store.enqueue_rollout("b", rollout_id="beta-queued")
    await store.enqueue_rollout("c", rollout_id="alpha-queued", mode="val")

    def ids(page):  # type: ignore[no-untyped-def]
        return sorted(r.rollout_id for r in page)

    both = await store.query_rollouts(status_in=["queuing"], rollout_id_contains="alpha")
    assert ids(both) == ["alpha-queued"] and both.total == 1
    either = await store.query_rollouts(status_in=["succeeded"], rollout_id_contains="beta", filter_logic="or")
    assert ids(either) == ["alpha-ok", "beta-queued"] and either.total == 2
    assert ids(await store.query_rollouts(rollout_id_in=["beta-queued"], mode="val", filter_logic="or")) == [
        "alpha-queued",
        "beta-queued",
    ]
    none = await store.query_rollouts(status_in=[])
    assert none.total == 0 and not none.items  # an empty status set matches nothing
    assert ids(await store.query_rollouts(status_in=[], rollout_id_contains="beta", filter_logic="or")) == [
        "beta-queued"
    ]
    assert (await store.query_rollouts()).total == 3  # no filter: everything
    assert (await store.query_rollouts(filter_logic="or")).total == 3
    assert (await store.query_rollouts(rollout_id_in=[""])).total == 0


async def test_worker_and_resources_filters(store: LightningStore) -> None:
    await store.update_worker("gpu-1", status="busy")
    await store.update_worker("gpu-2", status="idle")
    await store.update_worker("cpu-1", status="idle")
    assert sorted(w.worker_id for w in await store.query_workers(worker_id_contains="gpu")) == ["gpu-1", "gpu-2"]
    assert [w.worker_id for w in await store.query_workers(worker_id_contains="gpu", status_in=["idle"])] == ["gpu-2"]
    either = await store.query_workers(worker_id_contains="cpu", status_in=["busy"], filter_logic="or")
    assert sorted(w.worker_id for w in either) == ["cpu-1", "gpu-1"]
    assert (await store.query_workers(status_in=[])).total == 0

    template = {"prompt": PromptTemplate(template="{x}")}
    for resources_id in ("prompt-a", "prompt-b", "model-a"):
        await store.update_resources(resources_id, template)
    found = await store.query_resources(resources_id_contains="prompt")
    assert sorted(r.resources_id for r in found) == ["prompt-a", "prompt-b"]
    either = await store.query_resources(resources_id_contains="-b", resources_id_in=["model-a"], filter_logic="or")
    assert sorted(r.resources_id for r in either) == ["model-a", "prompt-b"]


async def test_span_filters_paging_totals_and_sort(store: LightningStore) -> None:
    rollout = await store.start_rollout("spans")
    assert rollout.attempt is not None
    root = new_span(
        "agent", rollout_id=rollout.rollout_id, attempt_id=rollout.attempt.attempt_id, start_time_unix_nano=50
    )
    children = [
        new_span(
            f"llm.call.{i}" if i % 2 == 0 else f"tool.{i}",
            rollout_id=rollout.rollout_id,
            attempt_id=rollout.attempt.attempt_id,
            trace_id=root.trace_id,
            parent_span_id=root.span_id,
            start_time_unix_nano=100 - i,  # later spans started earlier
        )
        for i in range(10)
    ]
    result = await store.add_spans([root, *children])
    assert result.accepted == 11

    llm = await store.query_spans(rollout.rollout_id, name_contains="llm.")
    assert [sp.name for sp in llm] == [f"llm.call.{i}" for i in (0, 2, 4, 6, 8)]
    assert [sp.name for sp in await store.query_spans(rollout.rollout_id, name="tool.3")] == ["tool.3"]
    kids = await store.query_spans(rollout.rollout_id, "latest", parent_span_id=root.span_id)
    assert len(kids) == 10
    either = await store.query_spans(rollout.rollout_id, name="agent", name_contains="tool.", filter_logic="or")
    assert [sp.name for sp in either] == ["agent", "tool.1", "tool.3", "tool.5", "tool.7", "tool.9"]
    both = await store.query_spans(rollout.rollout_id, trace_id=root.trace_id, span_id=root.span_id)
    assert [sp.name for sp in both] == ["agent"]

    page = await store.query_spans_page(rollout.rollout_id, name_contains="llm.", offset=1, limit=2)
    assert [sp.name for sp in page] == ["llm.call.2", "llm.call.4"] and page.total == 5
    everything = await store.query_spans_page(rollout.rollout_id, limit=3)
    assert len(everything.items) == 3 and everything.total == 11

    by_start = await store.query_spans(rollout.rollout_id, sort_by="start_time", limit=3)
    assert [sp.start_time_unix_nano for sp in by_start] == [50, 91, 92]
    by_start_desc = await store.query_spans(rollout.rollout_id, sort_by="start_time", order="desc", limit=2)
    assert [sp.name for sp in by_start_desc] == ["llm.call.0", "tool.1"]
    newest = await store.query_spans(rollout.rollout_id, order="desc", limit=1)
    assert [sp.name for sp in newest] == ["tool.9"]
    by_name = await store.query_spans_page(rollout.rollout_id, sort_by="name", name_contains="tool.", offset=3)
    assert [sp.name for sp in by_name] == ["tool.7", "tool.9"] and by_name.total == 5
    tail = await store.query_spans(rollout.rollout_id, after_sequence_id=9)
    assert [sp.sequence_id for sp in tail] == [10, 11]
