"""The checks at agl-server's edge (issue 11, items 1, 4 and 5), each against a real agl-server;
the span checks (items 2 and 3) are in test_edge_span_checks.py.

Every bad request gets a precise status naming the field and what is valid, and leaves stored
data as it was: the ``seeded`` fixture (conftest.py) checks that after each test.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import grpc
from edge_steps import INVALID, LONG_ID, STORE, Code, drain, expect, one_item, spec
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agl_core.proto import runner_pb2 as r
from agl_core.proto import store_pb2 as s
from agl_core.proto import trace_pb2
from agl_core.proto.runner_pb2_grpc import RunnerServiceStub
from agl_core.store.wire import varint
from agl_server.process import ServerProcess

# --- 1. timestamps and durations ---------------------------------------------------------------


async def test_out_of_range_timestamps_and_durations_are_refused(stub, seeded) -> None:  # type: ignore[no-untyped-def]
    _, rollout_id, _ = seeded
    before = (await stub.QueryAttempts(s.QueryAttemptsRequest(rollout_id=rollout_id))).attempts[0]
    for seconds, nanos in ((253402300800, 0), (1, -1), (-1, 0), (2**62, 0), (0, 10**9)):
        request = s.UpdateAttemptRequest(rollout_id=rollout_id, attempt_id="latest")
        request.last_heartbeat_time.seconds = seconds
        request.last_heartbeat_time.nanos = nanos
        await expect(
            stub.UpdateAttempt(request), INVALID, "last_heartbeat_time is", "1970-01-01T00:00:00Z to 2262-04-11"
        )
    after = (await stub.QueryAttempts(s.QueryAttemptsRequest(rollout_id=rollout_id))).attempts[0]
    assert after.last_heartbeat_time == before.last_heartbeat_time  # nothing stored

    for request, field in (
        (s.DequeueRolloutRequest(wait={"seconds": 2**62}), "wait is"),
        (s.DequeueRolloutRequest(wait={"seconds": 1, "nanos": -1}), "wait is"),
    ):
        await expect(stub.DequeueRollout(request), INVALID, field, "about 292 years")
    await expect(
        stub.WaitForRollouts(s.WaitForRolloutsRequest(rollout_ids=[rollout_id], timeout={"seconds": -(2**62)})),
        INVALID,
        "timeout is",
    )
    # The edge of the range is fine.
    ok = s.UpdateAttemptRequest(rollout_id=rollout_id, attempt_id="latest")
    ok.last_heartbeat_time.GetCurrentTime()
    await stub.UpdateAttempt(ok)


async def _work(channel: grpc.aio.Channel, *messages: r.WorkRequest, timeout: float = 30) -> list[r.WorkResponse]:
    """Open a Work stream, send ``messages``, keep it open until the server ends it."""
    done = asyncio.Event()

    async def requests() -> AsyncIterator[r.WorkRequest]:
        for message in messages:
            yield message
        await done.wait()

    try:
        return [m async for m in RunnerServiceStub(channel).Work(requests(), timeout=timeout)]
    finally:
        done.set()


async def test_work_hello_with_a_huge_heartbeat_interval_is_refused(channel, seeded) -> None:  # type: ignore[no-untyped-def]
    hello = r.WorkRequest(hello=r.WorkerHello(worker_id="w-huge", capacity=1))
    hello.hello.heartbeat_interval.seconds = 2**62
    await expect(_work(channel, hello), INVALID, "hello.heartbeat_interval is", "292 years")
    hello.hello.heartbeat_interval.seconds = 7200
    await expect(_work(channel, hello), INVALID, "hello.heartbeat_interval must be positive and at most 3600")


# --- 4. ids by their UTF-8 length --------------------------------------------------------------


async def test_ids_are_limited_by_utf8_bytes_everywhere(stub, channel, seeded) -> None:  # type: ignore[no-untyped-def]
    _, rollout_id, attempt_id = seeded
    too_long = "bytes long in UTF-8; ids are at most 200 bytes"
    await expect(stub.StartRollout(s.StartRolloutRequest(rollout=spec(rollout_id=LONG_ID))), INVALID, too_long)
    await expect(
        stub.StartRollout(s.StartRolloutRequest(rollout=spec(), worker_id=LONG_ID)), INVALID, "worker_id is 512"
    )
    await expect(stub.UpdateWorker(s.UpdateWorkerRequest(worker_id=LONG_ID)), INVALID, too_long)
    await expect(stub.DequeueRollout(s.DequeueRolloutRequest(worker_id=LONG_ID)), INVALID, too_long)
    resources = {"p": {"prompt_template": {"template": "x"}}}
    await expect(stub.AddResources(s.AddResourcesRequest(resources_id=LONG_ID, resources=resources)), INVALID, too_long)
    await expect(
        stub.UpdateResources(s.UpdateResourcesRequest(resources_id=LONG_ID, resources=resources)), INVALID, too_long
    )
    await expect(
        stub.UpdateAttempt(s.UpdateAttemptRequest(rollout_id=rollout_id, attempt_id=attempt_id, worker_id=LONG_ID)),
        INVALID,
        "worker_id is 512 bytes",
    )
    await expect(
        stub.UpdateRollout(s.UpdateRolloutRequest(rollout_id=rollout_id, resources_id="r" * 100_000)),
        INVALID,
        "resources_id is 100000 bytes",
    )
    await expect(stub.GetRollout(s.GetRolloutRequest(rollout_id=LONG_ID)), INVALID, too_long)
    # An empty id in a filter list matches nothing (was INTERNAL), as in the embedded store.
    empty = await stub.QueryRollouts(s.QueryRolloutsRequest(rollout_id_in=[""]))
    assert (empty.total, list(empty.rollouts)) == (0, [])
    await expect(
        stub.QueryWorkers(s.QueryWorkersRequest(worker_id_in=["w", LONG_ID])), INVALID, "worker_id_in[1] is 512"
    )
    hello = r.WorkRequest(hello=r.WorkerHello(worker_id=LONG_ID, capacity=1))
    await expect(_work(channel, hello), INVALID, "hello.worker_id is 512 bytes")
    # 200 bytes is the limit, whatever the characters.
    at_limit = "é" * 100
    created = await stub.StartRollout(s.StartRolloutRequest(rollout=spec(rollout_id=at_limit), worker_id=at_limit))
    assert created.rollout.rollout_id == at_limit
    await stub.AddResources(s.AddResourcesRequest(resources_id=at_limit, resources=resources))


async def test_a_bad_item_fails_alone_in_an_enqueue_batch(stub, seeded) -> None:  # type: ignore[no-untyped-def]
    nan_metadata = spec()
    nan_metadata.metadata.fields["score"].number_value = math.nan
    request = s.EnqueueRolloutsRequest(
        rollouts=[spec(), spec(rollout_id=LONG_ID), spec(rollout_id="ro-ok"), nan_metadata, spec()]
    )
    response = await stub.EnqueueRollouts(request)
    assert [e.index for e in response.errors] == [1, 3]
    assert "rollouts[1].rollout_id is 512 bytes" in response.errors[0].message
    assert "rollouts[3].metadata.score is nan" in response.errors[1].message
    assert [bool(ro.rollout_id) for ro in response.rollouts] == [True, False, True, False, True]
    assert response.rollouts[2].rollout_id == "ro-ok"
    # Errors the backend finds keep the caller's indices.
    other_input = spec(rollout_id="ro-ok")
    other_input.input.string_value = "another task"
    again = await stub.EnqueueRollouts(s.EnqueueRolloutsRequest(rollouts=[spec(rollout_id=LONG_ID), other_input]))
    assert [(e.index, e.code) for e in again.errors] == [(0, INVALID.value[0]), (1, Code.ALREADY_EXISTS.value[0])]


# --- 5. precise statuses for the rest ----------------------------------------------------------


async def test_undecodable_bytes_are_invalid_argument_on_every_service(channel, seeded) -> None:  # type: ignore[no-untyped-def]
    garbage = b"\xff\xff\xff\xff garbage"
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export", request_serializer=None)
    await expect(export(garbage), INVALID, "could not be decoded as")
    check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=None)
    await expect(check(garbage), INVALID, "could not be decoded as grpc.health.v1.HealthCheckRequest")
    watch = channel.unary_stream("/grpc.health.v1.Health/Watch", request_serializer=None)
    await expect(drain(watch(garbage)), INVALID, "could not be decoded")
    reflection = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", request_serializer=None
    )
    await expect(drain(reflection(one_item(garbage))), INVALID, "could not be decoded")
    work = channel.stream_stream("/agl.v1.RunnerService/Work", request_serializer=None)
    await expect(drain(work(one_item(garbage), timeout=30)), INVALID, "could not be decoded as agl.v1.WorkRequest")


def _deep_value(levels: int) -> bytes:
    """A serialized Struct nested ``levels`` Struct/Value pairs deep (built as bytes: protobuf would refuse)."""
    leaf = b""  # an empty Struct
    for _ in range(levels):
        value = b"\x2a" + varint(len(leaf)) + leaf  # Value.struct_value = 5
        entry = b"\x0a\x01k" + b"\x12" + varint(len(value)) + value  # map entry: key 1, value 2
        leaf = b"\x0a" + varint(len(entry)) + entry  # Struct.fields = 1
    return leaf


async def test_work_messages_nested_too_deep_are_invalid_argument(channel, seeded) -> None:  # type: ignore[no-untyped-def]
    info = _deep_value(80)  # 160 levels
    hello = b"\x10\x01" + b"\x2a" + varint(len(info)) + info  # capacity 1, info = 5
    request = b"\x0a" + varint(len(hello)) + hello  # WorkRequest.hello = 1
    work = channel.stream_stream("/agl.v1.RunnerService/Work", request_serializer=None)
    await expect(drain(work(one_item(request), timeout=30)), INVALID, "at most 100 levels")


async def test_non_finite_numbers_are_refused_by_every_update(stub, channel, seeded) -> None:  # type: ignore[no-untyped-def]
    store, rollout_id, attempt_id = seeded
    nan = struct_pb2.Struct()
    nan.fields["loss"].number_value = math.nan
    await expect(
        stub.UpdateAttempt(s.UpdateAttemptRequest(rollout_id=rollout_id, attempt_id=attempt_id, metadata=nan)),
        INVALID,
        "metadata.loss is nan",
    )
    await expect(
        stub.UpdateRollout(s.UpdateRolloutRequest(rollout_id=rollout_id, metadata=nan)), INVALID, "metadata.loss"
    )
    await expect(
        stub.UpdateWorker(s.UpdateWorkerRequest(worker_id="w-nan", heartbeat_stats=nan)),
        INVALID,
        "heartbeat_stats.loss is nan",
    )
    assert (await stub.QueryWorkers(s.QueryWorkersRequest(worker_id_in=["w-nan"]))).workers == []
    # On the Work stream: a report with NaN metadata is refused in its ack, a heartbeat ends the stream.
    hello = r.WorkRequest(hello=r.WorkerHello(worker_id="w-stream", capacity=0))
    report = r.WorkRequest(report=r.AttemptReport(rollout_id=rollout_id, attempt_id=attempt_id, status=4, metadata=nan))
    heartbeat = r.WorkRequest(heartbeat=r.WorkerHeartbeat(stats=nan))
    responses: list[r.WorkResponse] = []
    acked = asyncio.Event()
    done = asyncio.Event()

    async def requests() -> AsyncIterator[r.WorkRequest]:
        yield hello
        yield report
        await acked.wait()  # the heartbeat ends the stream: send it once the report is answered
        yield heartbeat
        await done.wait()

    async def run() -> None:
        async for message in RunnerServiceStub(channel).Work(requests(), timeout=30):
            responses.append(message)
            if message.WhichOneof("kind") == "report_ack":
                acked.set()

    try:
        await expect(run(), INVALID, "heartbeat.stats.loss is nan")
    finally:
        done.set()
    (ack,) = [m.report_ack for m in responses if m.WhichOneof("kind") == "report_ack"]
    assert ack.code == INVALID.value[0] and "report.metadata.loss is nan" in ack.message
    attempt = (await store.query_attempts(rollout_id))[0]
    assert attempt.status == "running" and "loss" not in attempt.metadata


async def test_client_sequence_ids_beyond_2_53_are_refused(stub, seeded) -> None:  # type: ignore[no-untyped-def]
    _, rollout_id, attempt_id = seeded
    spans = [
        trace_pb2.Span(
            name="max", rollout_id=rollout_id, attempt_id=attempt_id, span_id=b"seq00001", sequence_id=2**63 - 1
        ),
        trace_pb2.Span(
            name="ok", rollout_id=rollout_id, attempt_id=attempt_id, span_id=b"seq00002", sequence_id=2**53 - 1
        ),
        trace_pb2.Span(name="next", rollout_id=rollout_id, attempt_id=attempt_id, span_id=b"seq00003"),
    ]

    async def requests() -> AsyncIterator[s.IngestSpansRequest]:
        yield s.IngestSpansRequest(batch_id=1, spans=spans)

    (response,) = await drain(stub.IngestSpans(requests()))
    assert response.accepted == 2 and [e.index for e in response.rejected] == [0]
    assert "sequence_id is 9223372036854775807" in response.rejected[0].message
    stored = await stub.NextSequenceIds(s.NextSequenceIdsRequest(rollout_id=rollout_id, count=2))
    assert stored.first == 2**53 + 1  # after the span that took 2**53 - 1 and the one assigned 2**53
    await expect(
        drain(stub.QuerySpans(s.QuerySpansRequest(rollout_id=rollout_id, after_sequence_id=2**63 - 1))),
        INVALID,
        "after_sequence_id",
    )


async def test_unary_call_half_closed_without_a_message_is_answered(channel, seeded) -> None:  # type: ignore[no-untyped-def]
    for method in ("GetRollout", "StartRollout", "QueryRollouts"):
        call = channel.stream_unary(f"{STORE}/{method}", request_serializer=None)
        await expect(call(iter(()), timeout=20), INVALID, "ended without a request message")
    stream = channel.stream_stream(f"{STORE}/QuerySpans", request_serializer=None)
    await expect(drain(stream(iter(()), timeout=20)), INVALID, "ended without a request message")
    check = channel.stream_unary("/grpc.health.v1.Health/Check", request_serializer=None)
    await expect(check(iter(()), timeout=20), INVALID, "without a request message")


async def test_token_is_checked_before_the_body_is_parsed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with ServerProcess(tmp_path / "data", args=["--token", "s3cret"]) as server:
        good = (("authorization", "Bearer s3cret"),)
        async with grpc.aio.insecure_channel(server.address) as channel:
            get = channel.unary_unary(f"{STORE}/GetRollout", request_serializer=None)
            deep = b"\x0a" + varint(len(_deep_value(80))) + _deep_value(80)
            for body in (b"\xff\xff garbage", deep):
                await expect(get(body), Code.UNAUTHENTICATED, "missing authorization")
                await expect(get(body, metadata=(("authorization", "Bearer nope"),)), Code.UNAUTHENTICATED)
                await expect(get(body, metadata=good), INVALID, "could not be decoded")
            # A stream is refused on its headers alone: the server ends it before any message comes.
            # (Sending one raced that end: grpc's client then reported its failed send as INTERNAL.)
            work = channel.stream_stream("/agl.v1.RunnerService/Work", request_serializer=None)(timeout=20)
            assert await work.code() == Code.UNAUTHENTICATED, await work.details()
            half_closed = channel.stream_unary(f"{STORE}/GetRollout", request_serializer=None)
            await expect(half_closed(iter(()), timeout=20), Code.UNAUTHENTICATED)
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.SERVING  # probes stay open
        assert server.alive()
