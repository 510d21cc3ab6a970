"""Span queries of several rollouts in one call (``QuerySpansRequest.rollout_ids``,
``LightningStore.query_spans_of_rollouts``): on the embedded store and through a real agl-server
(``store`` fixture), and the server's answer to the raw request."""

from __future__ import annotations

import pytest

from agl_core import InvalidArgumentError, LightningStore, NotFoundError, new_span
from agl_core.client import GrpcStore
from agl_core.proto import store_pb2 as s


async def _rollout_with_spans(
    store: LightningStore, rollout_id: str, names: list[str], *, retried: bool = False
) -> None:
    """A rollout whose latest attempt has spans ``names`` (in that order); with ``retried``, a first
    attempt with a span of its own before it."""
    rollout = await store.start_rollout({"task": rollout_id}, rollout_id=rollout_id)
    attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
    if retried:
        await store.add_spans([new_span("first-attempt", rollout_id=rollout_id, attempt_id=attempt_id)])
        attempt_id = (await store.start_attempt(rollout_id)).attempt.attempt_id  # type: ignore[union-attr]
    for name in names:  # one at a time: the stored order is the order written
        await store.add_spans([new_span(name, rollout_id=rollout_id, attempt_id=attempt_id)])


async def test_spans_of_several_rollouts_come_back_per_rollout_in_order(store: LightningStore) -> None:
    await _rollout_with_spans(store, "ro-a", ["llm.a1", "tool.a2", "llm.a3"])
    await _rollout_with_spans(store, "ro-b", ["llm.b1"], retried=True)
    await _rollout_with_spans(store, "ro-empty", [])
    await store.enqueue_rollout("never started", rollout_id="ro-queued")

    ids = ["ro-b", "ro-queued", "ro-a", "ro-empty"]
    latest = await store.query_spans_of_rollouts(ids, "latest")
    assert list(latest) == ids  # every id given is a key, in the order given
    assert [span.name for span in latest["ro-a"]] == ["llm.a1", "tool.a2", "llm.a3"]
    assert [span.name for span in latest["ro-b"]] == ["llm.b1"]  # the latest attempt's only
    assert latest["ro-empty"] == [] and latest["ro-queued"] == []
    for rollout_id, spans in latest.items():
        assert all(span.rollout_id == rollout_id for span in spans)
        assert spans == await store.query_spans(rollout_id, "latest")  # as a query of the rollout alone

    every_attempt = await store.query_spans_of_rollouts(["ro-b"])
    assert [span.name for span in every_attempt["ro-b"]] == ["first-attempt", "llm.b1"]
    filtered = await store.query_spans_of_rollouts(["ro-a", "ro-b"], "latest", name_contains="llm.", order="desc")
    assert [span.name for span in filtered["ro-a"]] == ["llm.a3", "llm.a1"]
    assert [span.name for span in filtered["ro-b"]] == ["llm.b1"]
    assert await store.query_spans_of_rollouts([]) == {}


async def test_bad_rollout_ids_are_refused_saying_what_to_change(store: LightningStore) -> None:
    await _rollout_with_spans(store, "ro-a", ["llm.a1"])
    with pytest.raises(InvalidArgumentError, match=r"rollout_ids\[2\] repeats rollout_ids\[0\]"):
        await store.query_spans_of_rollouts(["ro-a", "ro-x", "ro-a"])
    with pytest.raises(InvalidArgumentError, match=r"rollout_ids\[1\] is required"):
        await store.query_spans_of_rollouts(["ro-a", ""])
    with pytest.raises(InvalidArgumentError, match="at most 1000 per query: split them"):
        await store.query_spans_of_rollouts([f"ro-{i}" for i in range(1001)])
    with pytest.raises(NotFoundError, match="ro-nope"):
        await store.query_spans_of_rollouts(["ro-a", "ro-nope"])
    # Nothing was changed by the refusals.
    assert [span.name for span in (await store.query_spans_of_rollouts(["ro-a"]))["ro-a"]] == ["llm.a1"]


async def test_agl_server_answers_rollout_ids_in_one_call(grpc_store: GrpcStore) -> None:
    await _rollout_with_spans(grpc_store, "ro-a", ["s1", "s2"])
    await _rollout_with_spans(grpc_store, "ro-b", ["s3"])
    # The raw request, as any generated client sends it: one QuerySpans call.
    request = s.QuerySpansRequest(rollout_ids=["ro-b", "ro-a"], attempt_id="latest")
    spans = [span async for chunk in grpc_store.backend.query_spans(request) for span in chunk.spans]
    assert [(span.rollout_id, span.name) for span in spans] == [("ro-b", "s3"), ("ro-a", "s1"), ("ro-a", "s2")]

    refusals = {
        "not both": s.QuerySpansRequest(rollout_id="ro-a", rollout_ids=["ro-b"]),
        "leave them unset with rollout_ids": s.QuerySpansRequest(rollout_ids=["ro-a"], limit=1),
        "leave them unset with rollout_ids ": s.QuerySpansRequest(rollout_ids=["ro-a"], include_total=True),
    }
    for message, bad in refusals.items():
        with pytest.raises(InvalidArgumentError, match=message.strip()):
            async for _ in grpc_store.backend.query_spans(bad):
                pass
