"""Queues, labels, priorities and namespaces through the store API: embedded LMDB and agl-server."""

from __future__ import annotations

from pathlib import Path

import pytest

from agl_core.errors import BatchError, InvalidArgumentError, NotFoundError
from agl_core.store import LightningStore, LmdbStore
from agl_core.types import PromptTemplate, RolloutConfig, RolloutStatus


async def drain(store: LightningStore, **route: object) -> list[object]:
    """Every rollout the route lets a worker claim, one at a time, as their inputs."""
    claimed = []
    while (rollout := await store.dequeue_rollout(**route)) is not None:  # type: ignore[arg-type]
        claimed.append(rollout.input)
    return claimed


async def test_priority_first_then_fifo_within_a_queue(store: LightningStore) -> None:
    order = [("a", 0), ("b", 5), ("c", 0), ("d", 1000), ("e", 5), ("f", 0)]
    for name, priority in order:
        await store.enqueue_rollout(name, priority=priority)
    assert await drain(store) == ["d", "b", "e", "a", "c", "f"]


async def test_a_worker_of_several_queues_takes_the_best_across_them(store: LightningStore) -> None:
    await store.enqueue_rollout("q1-old", queue="q1")
    await store.enqueue_rollout("q2-high", queue="q2", priority=3)
    await store.enqueue_rollout("q2-old", queue="q2")
    await store.enqueue_rollout("other", queue="q3")
    await store.enqueue_rollout("default")
    assert await drain(store, queues=["q1", "q2"]) == ["q2-high", "q1-old", "q2-old"]
    assert await drain(store) == ["default"]
    assert await drain(store, queues=["q3"]) == ["other"]


async def test_selectors_route_by_labels(store: LightningStore) -> None:
    specs = [
        ("go-1", {"lang": "go"}),
        ("ts-1", {"lang": "ts"}),
        ("py-1", {}),
        ("go-gpu", {"lang": "go", "gpu": "a100"}),
        ("py-2", {"lang": "py"}),
    ]
    for name, labels in specs:
        await store.enqueue_rollout(name, labels=labels)
    assert await drain(store, label_selector="lang=go,!gpu") == ["go-1"]
    assert await drain(store, label_selector={"lang": "ts"}) == ["ts-1"]
    assert await drain(store, label_selector="lang notin (go,ts)") == ["py-1", "py-2"]
    assert await drain(store, label_selector="gpu in (a100, h100)") == ["go-gpu"]
    page = await store.query_rollouts(status_in=["preparing"])
    assert {r.input: r.labels for r in page}["go-gpu"] == {"lang": "go", "gpu": "a100"}


async def test_a_retry_goes_back_to_its_queue_with_its_labels_and_priority(store: LightningStore) -> None:
    config = RolloutConfig(max_attempts=2, retry_condition=["failed"])
    rollout = await store.enqueue_rollout("task", queue="gpu", labels={"lang": "go"}, priority=7, config=config)
    first = await store.dequeue_rollout(queues=["gpu"], label_selector="lang=go")
    assert first is not None and first.attempt is not None
    await store.update_attempt(first.rollout_id, first.attempt.attempt_id, status="failed")
    requeued = await store.get_rollout(rollout.rollout_id)
    assert requeued is not None and requeued.status == RolloutStatus.REQUEUING
    assert (requeued.queue, requeued.labels, requeued.priority) == ("gpu", {"lang": "go"}, 7)
    # Not in the default queue, nor for a worker whose selector excludes it.
    assert await store.dequeue_rollout() is None
    assert await store.dequeue_rollout(queues=["gpu"], label_selector="lang=py") is None
    second = await store.dequeue_rollout(queues=["gpu"], label_selector="lang=go")
    assert second is not None and second.rollout_id == rollout.rollout_id
    assert second.attempt is not None and second.attempt.sequence_id == 2


async def test_resources_are_pinned_at_enqueue(store: LightningStore) -> None:
    # The original's test_task_inherits_latest_resources: no resources yet, nothing to pin.
    early = await store.enqueue_rollout("early")
    assert early.resources_id is None
    v1 = await store.add_resources({"prompt": PromptTemplate(template="v1 {x}")})
    first = await store.enqueue_rollout("first")
    started = await store.start_rollout("started")
    v2 = await store.add_resources({"prompt": PromptTemplate(template="v2 {x}")})
    second = await store.enqueue_rollout("second")
    explicit = await store.enqueue_rollout("explicit", resources_id=v1.resources_id)
    assert first.resources_id == v1.resources_id and started.resources_id == v1.resources_id
    assert second.resources_id == v2.resources_id and explicit.resources_id == v1.resources_id
    stored = await store.get_rollout(first.rollout_id)
    assert stored is not None and stored.resources_id == v1.resources_id
    # Updating the set in place does not move the pin: the rollout names the set it ran with.
    await store.update_resources(v1.resources_id, {"prompt": PromptTemplate(template="v1b {x}")})
    claimed = {r.input: r.resources_id for r in await store.dequeue_rollouts(limit=10)}
    assert claimed == {
        "early": None,
        "first": v1.resources_id,
        "second": v2.resources_id,
        "explicit": v1.resources_id,
    }


async def test_namespaces_keep_rollouts_resources_and_queries_apart(store: LightningStore) -> None:
    a, b = store.with_namespace("exp-a"), store.with_namespace("exp-b")
    ra = await a.add_resources({"prompt": PromptTemplate(template="A {x}")})
    rb = await b.add_resources({"prompt": PromptTemplate(template="B {x}")})
    default_res = await store.add_resources({"prompt": PromptTemplate(template="default {x}")})
    assert (ra.namespace, rb.namespace, default_res.namespace) == ("exp-a", "exp-b", "default")
    latest_a, latest_b = await a.get_latest_resources(), await b.get_latest_resources()
    assert latest_a is not None and latest_a.resources_id == ra.resources_id
    assert latest_b is not None and latest_b.resources_id == rb.resources_id
    assert [r.resources_id for r in await a.query_resources()] == [ra.resources_id]

    in_a = await a.enqueue_rollout("task-a")
    in_b = await b.enqueue_rollout("task-b")
    plain = await store.enqueue_rollout("task-default")
    assert (in_a.namespace, in_a.resources_id) == ("exp-a", ra.resources_id)
    assert (in_b.namespace, in_b.resources_id) == ("exp-b", rb.resources_id)
    assert (plain.namespace, plain.resources_id) == ("default", default_res.resources_id)

    assert [r.input for r in await a.query_rollouts()] == ["task-a"]
    assert [r.input for r in await store.query_rollouts()] == ["task-default"]
    assert (await store.query_rollouts(all_namespaces=True)).total == 3
    # A worker of one namespace never takes another's work.
    assert await drain(b) == ["task-b"]
    assert await drain(a) == ["task-a"]
    assert await drain(store) == ["task-default"]
    # A set of one namespace cannot be updated from another (ids are global).
    with pytest.raises(NotFoundError, match="belong to 'exp-a'"):
        await b.update_resources(ra.resources_id, {"prompt": PromptTemplate(template="stolen")})


async def test_watch_is_scoped_to_the_namespace(store: LightningStore) -> None:
    a = store.with_namespace("exp-a")
    async with a.watch_rollouts() as watch:
        await store.enqueue_rollout("not mine")
        mine = await a.enqueue_rollout("mine")
        event = await anext(aiter(watch))
    assert event.rollout_id == mine.rollout_id and event.rollout.namespace == "exp-a"


@pytest.mark.parametrize(
    ("route", "fragment"),
    [
        ({"label_selector": "lang in (go"}, "never closed"),
        ({"label_selector": "lang=go,,x"}, "empty requirement"),
        ({"label_selector": "lang=g o"}, "cannot read 'lang=g o'"),
        ({"label_selector": "lang in ()"}, "needs a list of valid values"),
        ({"queues": ["Bad Queue"]}, "queues[0] 'Bad Queue' is not a valid queue name"),
    ],
)
async def test_malformed_routes_are_invalid_arguments(store: LightningStore, route: dict, fragment: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        await store.dequeue_rollout(**route)
    assert fragment in str(info.value)
    assert "k in (a,b)" in str(info.value) or "valid queue name" in str(info.value)


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"priority": -1}, "priority is -1; a priority is 0 (the default) to 1000"),
        ({"priority": 1001}, "priority is 1001"),
        ({"queue": "UPPER"}, "'UPPER' is not a valid queue name"),
        ({"labels": {"bad key": "x"}}, "is not a valid label key"),
        ({"labels": {"k": "spaced value"}}, "is not a valid label value"),
    ],
)
async def test_bad_rollout_routing_is_refused_and_nothing_is_stored(
    store: LightningStore, fields: dict, fragment: str
) -> None:
    with pytest.raises(BatchError) as info:
        await store.enqueue_rollout("x", **fields)
    ((_, error),) = info.value.errors
    assert isinstance(error, InvalidArgumentError) and fragment in str(error)
    assert (await store.query_rollouts(all_namespaces=True)).total == 0


async def test_bad_namespace_names_are_refused(store: LightningStore) -> None:
    with pytest.raises(InvalidArgumentError, match="not a valid namespace name"):
        store.with_namespace("Exp A")
    # Straight at the backend, as another client would send it.
    from agl_core.proto import store_pb2 as s

    with pytest.raises(InvalidArgumentError, match="namespace 'no/slash' is not a valid namespace name"):
        await store.backend.get_resources(s.GetResourcesRequest(namespace="no/slash"))


async def test_dispatch_order_survives_a_restart(data_dir: Path) -> None:
    store = LmdbStore(data_dir)
    for name, priority, queue in [("low", 0, "q"), ("high", 9, "q"), ("other", 5, "r"), ("mid", 4, "q")]:
        await store.enqueue_rollout(name, priority=priority, queue=queue)
    cancelled = await store.enqueue_rollout("cancelled", priority=100, queue="q")
    await store.update_rollout(cancelled.rollout_id, status="cancelled")
    await store.close()
    reopened = LmdbStore(data_dir)
    try:
        assert await drain(reopened, queues=["q"]) == ["high", "mid", "low"]
        assert await drain(reopened, queues=["r"]) == ["other"]
    finally:
        await reopened.close()
