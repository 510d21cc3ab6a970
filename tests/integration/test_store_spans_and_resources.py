"""Store semantics: spans (de-duplication, sequence ids, attributes, chunks, rejections) and
versioned resources; run against LmdbStore in-process and GrpcStore talking to a real agl-server."""

from __future__ import annotations

import pytest

from agl_core import AlreadyExistsError, InvalidArgumentError, LightningStore, NotFoundError, PromptTemplate, new_span
from agl_core.types import LLM

# --- spans -----------------------------------------------------------------------------------------


async def test_duplicate_span_ids_are_ignored(store: LightningStore) -> None:
    rollout = await store.start_rollout("x")
    span = new_span("once", rollout_id=rollout.rollout_id, attempt_id=rollout.attempt.attempt_id)  # type: ignore[union-attr]
    first = await store.add_spans([span])
    again = await store.add_spans([span, span])
    assert (first.accepted, first.duplicates) == (1, 0)
    assert (again.accepted, again.duplicates) == (0, 2)
    assert [s.name for s in await store.query_spans(rollout.rollout_id)] == ["once"]


async def test_sequence_ids_are_monotonic_per_rollout(store: LightningStore) -> None:
    rollout = await store.start_rollout("x")
    attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
    await store.add_spans([new_span(f"s{i}", rollout_id=rollout.rollout_id, attempt_id=attempt_id) for i in range(3)])
    reserved = await store.next_sequence_ids(rollout.rollout_id, 5)
    assert list(reserved) == [4, 5, 6, 7, 8]
    await store.add_spans([new_span("own", rollout_id=rollout.rollout_id, attempt_id=attempt_id, sequence_id=20)])
    await store.add_spans([new_span("after", rollout_id=rollout.rollout_id, attempt_id=attempt_id)])
    spans = await store.query_spans(rollout.rollout_id)
    assert [(s.name, s.sequence_id) for s in spans] == [("s0", 1), ("s1", 2), ("s2", 3), ("own", 20), ("after", 21)]
    tail = await store.query_spans(rollout.rollout_id, after_sequence_id=3)
    assert [s.name for s in tail] == ["own", "after"]
    other = await store.start_rollout("y")
    assert list(await store.next_sequence_ids(other.rollout_id)) == [1]


async def test_spans_are_returned_with_their_attributes_and_in_chunks(store: LightningStore) -> None:
    rollout = await store.start_rollout("x")
    attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
    spans = [
        new_span("big", rollout_id=rollout.rollout_id, attempt_id=attempt_id, attributes={"i": i, "pad": "x" * 5000})
        for i in range(700)
    ]
    result = await store.add_spans(spans)
    assert result.accepted == 700
    back = await store.query_spans(rollout.rollout_id, attempt_id)
    assert [s.attributes[0].value.int_value for s in back] == list(range(700))
    assert len(await store.query_spans(rollout.rollout_id, limit=300)) == 300


async def test_unplaceable_spans_are_rejected_one_by_one(store: LightningStore) -> None:
    rollout = await store.start_rollout("x")
    good = new_span("ok", rollout_id=rollout.rollout_id, attempt_id=rollout.attempt.attempt_id)  # type: ignore[union-attr]
    unknown_rollout = new_span("a", rollout_id="ro-missing", attempt_id="at-missing")
    unknown_attempt = new_span("b", rollout_id=rollout.rollout_id, attempt_id="at-missing")
    no_ids = new_span("c", rollout_id="", attempt_id="")
    result = await store.add_spans([unknown_rollout, good, unknown_attempt, no_ids])
    assert result.accepted == 1
    assert [i for i, _ in result.rejected] == [0, 2, 3]
    assert isinstance(result.rejected[0][1], NotFoundError) and "ro-missing" in str(result.rejected[0][1])
    assert isinstance(result.rejected[1][1], NotFoundError) and "at-missing" in str(result.rejected[1][1])
    assert isinstance(result.rejected[2][1], InvalidArgumentError) and "rollout_id is required" in str(
        result.rejected[2][1]
    )
    with pytest.raises(NotFoundError):
        await store.add_span(unknown_rollout)


# --- resources -------------------------------------------------------------------------------------


async def test_resources_versions_and_latest(store: LightningStore) -> None:
    assert await store.get_latest_resources() is None
    first = await store.add_resources({"prompt": PromptTemplate(template="Q: {q}")})
    assert first.version == 1
    assert (await store.get_latest_resources()).resources_id == first.resources_id  # type: ignore[union-attr]
    llm = LLM(endpoint="http://127.0.0.1:9/v1", model="m", sampling_parameters={"temperature": 0.5})
    second = await store.add_resources({"llm": llm}, resources_id="main")
    assert second.resources_id == "main"
    updated = await store.update_resources("main", {"llm": llm, "prompt": PromptTemplate(template="A: {q}")})
    assert updated.version == 2 and updated.update_time >= updated.create_time
    latest = await store.get_latest_resources()
    assert latest is not None and latest.resources_id == "main" and latest.version == 2
    assert latest.resources["llm"] == llm
    assert (await store.get_resources(first.resources_id)).resources["prompt"].template == "Q: {q}"  # type: ignore[union-attr]
    assert await store.get_resources("nope") is None
    with pytest.raises(AlreadyExistsError):
        await store.add_resources({"p": PromptTemplate(template="x")}, resources_id="main")
    created = await store.update_resources("fresh", {"p": PromptTemplate(template="y")})
    assert created.version == 1
    page = await store.query_resources()
    assert [r.resources_id for r in page] == [first.resources_id, "main", "fresh"] and page.total == 3
    assert [r.resources_id for r in await store.query_resources(sort_by="version", order="desc", limit=1)] == ["main"]
