"""Bad input over the wire: each request gets a precise status and message; the server stays up and
what it already stored is untouched. Requests go through the raw generated stub, so nothing in
the Python client can clean them up first."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agl_core import new_span
from agl_core.client import GrpcStore
from agl_core.proto import store_pb2 as s
from agl_core.proto import store_pb2_grpc, trace_pb2
from agl_core.proto import types_pb2 as t
from agl_server.process import ServerProcess

Code = grpc.StatusCode


@pytest.fixture
async def stub(server: ServerProcess) -> AsyncIterator[store_pb2_grpc.LightningStoreServiceStub]:
    async with grpc.aio.insecure_channel(
        server.address, options=[("grpc.max_send_message_length", 64 << 20)]
    ) as channel:
        yield store_pb2_grpc.LightningStoreServiceStub(channel)


@pytest.fixture
async def seeded(server: ServerProcess) -> AsyncIterator[tuple[GrpcStore, str, str]]:
    """A store with one running rollout and three spans: what must survive every bad request."""
    async with GrpcStore(server.address) as store:
        rollout = await store.start_rollout({"keep": "me"})
        attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
        await store.add_spans(
            [new_span(f"s{i}", rollout_id=rollout.rollout_id, attempt_id=attempt_id) for i in range(3)]
        )
        yield store, rollout.rollout_id, attempt_id
        # Afterwards: the server still serves and the data is as it was.
        assert server.alive()
        after = await store.get_rollout(rollout.rollout_id)
        assert after is not None and after.input == {"keep": "me"} and after.status == "running"
        assert [sp.name for sp in await store.query_spans(rollout.rollout_id)] == ["s0", "s1", "s2"]
        async with grpc.aio.insecure_channel(server.address) as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING


async def expect(call, code: grpc.StatusCode, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    for fragment in fragments:
        assert fragment in (info.value.details() or ""), info.value.details()


def spec(**fields: object) -> s.RolloutSpec:
    message = s.RolloutSpec(**fields)  # type: ignore[arg-type]
    if "input" not in fields:
        message.input.string_value = "task"
    return message


async def test_unknown_ids_are_not_found(stub, seeded) -> None:  # type: ignore[no-untyped-def]
    _, rollout_id, _ = seeded
    await expect(
        stub.GetRollout(s.GetRolloutRequest(rollout_id="ro-nope")), Code.NOT_FOUND, "rollout 'ro-nope' not found"
    )
    await expect(stub.UpdateRollout(s.UpdateRolloutRequest(rollout_id="ro-nope", status=6)), Code.NOT_FOUND, "ro-nope")
    await expect(
        stub.UpdateAttempt(s.UpdateAttemptRequest(rollout_id=rollout_id, attempt_id="at-nope", status=4)),
        Code.NOT_FOUND,
        "attempt 'at-nope' not found",
    )
    await expect(stub.StartAttempt(s.StartAttemptRequest(rollout_id="ro-nope")), Code.NOT_FOUND)
    await expect(stub.GetResources(s.GetResourcesRequest(resources_id="rs-nope")), Code.NOT_FOUND, "rs-nope")
    await expect(stub.GetResources(s.GetResourcesRequest()), Code.NOT_FOUND, "no resources have been added yet")
    await expect(stub.GetWorker(s.GetWorkerRequest(worker_id="nobody")), Code.NOT_FOUND, "worker 'nobody'")
    await expect(stub.QueryAttempts(s.QueryAttemptsRequest(rollout_id="ro-nope")), Code.NOT_FOUND)
    await expect(stub.NextSequenceIds(s.NextSequenceIdsRequest(rollout_id="ro-nope")), Code.NOT_FOUND)
    stream = stub.QuerySpans(s.QuerySpansRequest(rollout_id="ro-nope"))
    await expect(_drain(stream), Code.NOT_FOUND, "ro-nope")


async def _drain(stream) -> None:  # type: ignore[no-untyped-def]
    async for _ in stream:
        pass


async def test_illegal_transitions_are_failed_precondition(stub, seeded) -> None:  # type: ignore[no-untyped-def]
    store, _, _ = seeded
    done = await store.start_rollout("finish me")
    await store.update_attempt(done.rollout_id, "latest", status="succeeded")
    await expect(
        stub.UpdateRollout(s.UpdateRolloutRequest(rollout_id=done.rollout_id, status=t.ROLLOUT_STATUS_QUEUING)),
        Code.FAILED_PRECONDITION,
        "already succeeded",
        "cannot become queuing",
    )
    await expect(
        stub.UpdateAttempt(
            s.UpdateAttemptRequest(rollout_id=done.rollout_id, attempt_id="latest", status=t.ATTEMPT_STATUS_FAILED)
        ),
        Code.FAILED_PRECONDITION,
        "already succeeded",
    )
    await expect(stub.StartAttempt(s.StartAttemptRequest(rollout_id=done.rollout_id)), Code.FAILED_PRECONDITION)


async def test_malformed_task_input_is_invalid_argument(stub, seeded) -> None:  # type: ignore[no-untyped-def]
    nan = spec()
    nan.input.struct_value.fields["score"].number_value = math.nan
    await expect(
        stub.StartRollout(s.StartRolloutRequest(rollout=nan)), Code.INVALID_ARGUMENT, "rollout.input.score", "finite"
    )
    no_kind = s.RolloutSpec()
    no_kind.input.SetInParent()
    await expect(stub.StartRollout(s.StartRolloutRequest(rollout=no_kind)), Code.INVALID_ARGUMENT, "no kind set")
    deep = spec()
    value = deep.input
    for _ in range(40):
        value = value.list_value.values.add()
    value.string_value = "bottom"
    await expect(stub.StartRollout(s.StartRolloutRequest(rollout=deep)), Code.INVALID_ARGUMENT, "nested deeper than 32")
    bad_mode = spec(mode=42)
    await expect(stub.StartRollout(s.StartRolloutRequest(rollout=bad_mode)), Code.INVALID_ARGUMENT, "mode 42")
    bad_config = spec()
    bad_config.config.timeout_seconds = -3
    await expect(stub.StartRollout(s.StartRolloutRequest(rollout=bad_config)), Code.INVALID_ARGUMENT, "timeout_seconds")
    retry_success = spec()
    retry_success.config.retry_condition.append(t.ATTEMPT_STATUS_SUCCEEDED)
    await expect(
        stub.StartRollout(s.StartRolloutRequest(rollout=retry_success)), Code.INVALID_ARGUMENT, "retry_condition"
    )


async def test_missing_fields_are_invalid_argument(stub, seeded) -> None:  # type: ignore[no-untyped-def]
    _, rollout_id, _ = seeded
    await expect(stub.StartRollout(s.StartRolloutRequest()), Code.INVALID_ARGUMENT, "rollout.input is required")
    await expect(stub.GetRollout(s.GetRolloutRequest()), Code.INVALID_ARGUMENT, "rollout_id is required")
    await expect(
        stub.UpdateAttempt(s.UpdateAttemptRequest(rollout_id=rollout_id)),
        Code.INVALID_ARGUMENT,
        "attempt_id is required",
    )
    await expect(stub.EnqueueRollouts(s.EnqueueRolloutsRequest()), Code.INVALID_ARGUMENT, "rollouts is empty")
    await expect(
        stub.UpdateRollout(s.UpdateRolloutRequest(rollout_id=rollout_id, status=99)), Code.INVALID_ARGUMENT, "status 99"
    )
    await expect(
        stub.AddResources(s.AddResourcesRequest(resources={"p": s.AddResourcesRequest().resources.get_or_create("p")})),
        Code.INVALID_ARGUMENT,
        "has no kind",
    )
    no_endpoint = s.AddResourcesRequest()
    no_endpoint.resources["llm"].llm.model = "m"
    await expect(stub.AddResources(no_endpoint), Code.INVALID_ARGUMENT, "resources['llm'].endpoint is required")
    await expect(stub.QueryRollouts(s.QueryRolloutsRequest(sort_by="color")), Code.INVALID_ARGUMENT, "sort_by 'color'")
    await expect(stub.QueryRollouts(s.QueryRolloutsRequest(limit=-1)), Code.INVALID_ARGUMENT, "limit is -1")


async def test_undecodable_requests_are_invalid_argument(server: ServerProcess, seeded) -> None:  # type: ignore[no-untyped-def]
    async with grpc.aio.insecure_channel(server.address) as channel:
        raw = channel.unary_unary("/agl.v1.LightningStoreService/GetRollout", request_serializer=None)
        await expect(
            raw(b"\xff\xff\xff\xff garbage"), Code.INVALID_ARGUMENT, "could not be decoded as agl.v1.GetRolloutRequest"
        )
        stream = channel.unary_stream("/agl.v1.LightningStoreService/QuerySpans", request_serializer=None)
        await expect(_drain(stream(b"\x0a\xff")), Code.INVALID_ARGUMENT, "could not be decoded")


async def test_batch_items_fail_alone(stub, seeded) -> None:  # type: ignore[no-untyped-def]
    bad = spec()
    bad.config.max_attempts = -1
    response = await stub.EnqueueRollouts(s.EnqueueRolloutsRequest(rollouts=[spec(), bad, spec()]))
    assert [e.index for e in response.errors] == [1]
    assert response.errors[0].code == Code.INVALID_ARGUMENT.value[0]
    assert "rollouts[1].config.max_attempts" in response.errors[0].message
    assert response.rollouts[0].rollout_id and not response.rollouts[1].rollout_id and response.rollouts[2].rollout_id


async def test_oversized_message_is_resource_exhausted(stub, seeded) -> None:  # type: ignore[no-untyped-def]
    huge = spec()
    huge.input.string_value = "x" * (17 * 1024 * 1024)  # over the server's 16 MiB default
    await expect(stub.StartRollout(s.StartRolloutRequest(rollout=huge)), Code.RESOURCE_EXHAUSTED)
    store, _, _ = seeded
    # The Python client refuses an oversized span itself, per item, before it could break the stream.
    other = await store.start_rollout("other")
    rollout_id, attempt_id = other.rollout_id, other.attempt.attempt_id  # type: ignore[union-attr]
    big_span = new_span("huge", rollout_id=rollout_id, attempt_id=attempt_id, attributes={"blob": "y" * (17 << 20)})
    result = await store.add_spans([big_span, new_span("fine", rollout_id=rollout_id, attempt_id=attempt_id)])
    assert result.accepted == 1 and [i for i, _ in result.rejected] == [0]
    assert "over the" in str(result.rejected[0][1])
    assert [sp.name for sp in await store.query_spans(rollout_id)] == ["fine"]


async def test_ingest_stream_with_an_oversized_batch_fails_that_stream_only(stub, seeded) -> None:  # type: ignore[no-untyped-def]
    _, rollout_id, attempt_id = seeded
    span = trace_pb2.Span(name="big", rollout_id=rollout_id, attempt_id=attempt_id, span_id=b"12345678")
    span.attributes.add(key="blob").value.string_value = "z" * (17 << 20)

    async def requests():  # type: ignore[no-untyped-def]
        yield s.IngestSpansRequest(batch_id=1, spans=[span])

    await expect(_drain(stub.IngestSpans(requests())), Code.RESOURCE_EXHAUSTED)


async def test_ingest_reports_bad_spans_per_item(stub, seeded) -> None:  # type: ignore[no-untyped-def]
    _, rollout_id, attempt_id = seeded

    async def requests():  # type: ignore[no-untyped-def]
        yield s.IngestSpansRequest(
            batch_id=7,
            spans=[
                trace_pb2.Span(name="no-id", rollout_id=rollout_id, attempt_id=attempt_id),
                trace_pb2.Span(name="long-id", rollout_id=rollout_id, attempt_id=attempt_id, span_id=b"x" * 17),
                trace_pb2.Span(name="neg", rollout_id=rollout_id, attempt_id=attempt_id, span_id=b"a", sequence_id=-5),
            ],
        )

    responses = [r async for r in stub.IngestSpans(requests())]
    assert len(responses) == 1 and responses[0].batch_id == 7 and responses[0].accepted == 0
    messages = {e.index: e.message for e in responses[0].rejected}
    assert "span_id has 0 bytes" in messages[0] and "span_id has 17 bytes" in messages[1]
    assert "sequence_id is -5" in messages[2]
    assert {e.code for e in responses[0].rejected} == {Code.INVALID_ARGUMENT.value[0]}
