"""Property-based fuzz of a real agl-server: every RPC of LightningStoreService, the RunnerService
Work stream and OTLP Export, with generated requests (valid-ish messages, boundary values,
damaged and random bytes; see ``support/fuzz_requests.py`` and the modules it uses).

The properties:
- no call is answered UNKNOWN, INTERNAL or UNAVAILABLE (every refusal is a precise status);
- the agl-server process never dies;
- data seeded before the fuzz (ids the fuzz never targets) reads back byte-identical after it;
- the server stops cleanly and starts again on the same directory with the seeded data intact.

``AGL_FUZZ_EXAMPLES`` overrides the number of generated calls (the default was measured to take
about a minute on a loaded 2-core machine).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
from pathlib import Path

import grpc
from google.protobuf import message_factory
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from support.fuzz_live import LIVE_ATTEMPTS, SEED_PREFIX, remember_attempts
from support.fuzz_requests import Method, all_methods, calls

from agl_core import new_span
from agl_core.client import GrpcStore
from agl_core.proto import store_pb2 as s
from agl_server.process import ServerProcess

# 2,500 calls took 45-65 s here (2 cores, load 12-20; generation, seeding and the restart included).
EXAMPLES = int(os.environ.get("AGL_FUZZ_EXAMPLES", "2500"))
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE}
# Long polls and streams get a short deadline; the others a generous one, so that a call the server
# never answers (a hang) shows up as DEADLINE_EXCEEDED, which only waiting methods may get.
WAITING_DEADLINE = 0.5
WATCH_DEADLINE = 0.2  # a watch always runs to its deadline
DEADLINE = 30.0
_CLIENT_WRITE_FAILED = "Internal error from Core"
SEED_WORKER = f"{SEED_PREFIX}worker"
SEED_RESOURCES = f"{SEED_PREFIX}resources"
SEED_ROLLOUTS = (f"{SEED_PREFIX}succeeded", f"{SEED_PREFIX}failed")


async def _seed(address: str) -> None:
    """Two finished rollouts with spans and metadata, a resources set and a worker: nothing the fuzz
    can reach by id, and nothing in the queue or watched by the watchdog."""
    async with GrpcStore(address) as store:
        await store.add_resources(
            {"prompt": {"resource_type": "prompt_template", "template": "Q: {q}"}}, resources_id=SEED_RESOURCES
        )
        first = await store.start_rollout(
            {"q": "2+2", "nested": [1, {"a": None}]},
            rollout_id=SEED_ROLLOUTS[0],
            resources_id=SEED_RESOURCES,
            metadata={"tag": "seed", "n": 3},
        )
        attempt_id = first.attempt.attempt_id  # type: ignore[union-attr]
        await store.add_spans(
            [
                new_span(f"step-{i}", rollout_id=first.rollout_id, attempt_id=attempt_id, attributes={"i": i, "é": "ü"})
                for i in range(5)
            ]
        )
        await store.update_attempt(first.rollout_id, attempt_id, status="succeeded", metadata={"reward": 1.0})
        await store.enqueue_rollout("task", rollout_id=SEED_ROLLOUTS[1], config={"max_attempts": 1})
        claimed = await store.dequeue_rollout(worker_id=SEED_WORKER)
        assert claimed is not None and claimed.rollout_id == SEED_ROLLOUTS[1]
        second_attempt = claimed.attempt.attempt_id  # type: ignore[union-attr]
        await store.add_spans([new_span("only", rollout_id=claimed.rollout_id, attempt_id=second_attempt)])
        await store.update_attempt(claimed.rollout_id, second_attempt, status="failed")
        for rollout_id in SEED_ROLLOUTS:
            rollout = await store.get_rollout(rollout_id)
            assert rollout is not None and rollout.status in ("succeeded", "failed")


async def _snapshot(channel: grpc.aio.Channel) -> dict[str, bytes]:
    """The seeded data read back through the API, each answer re-serialized deterministically."""

    async def unary(method: str, request: object, response: type) -> bytes:
        call = channel.unary_unary(
            f"/agl.v1.LightningStoreService/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response.FromString,
        )
        return (await call(request, timeout=DEADLINE)).SerializeToString(deterministic=True)

    out: dict[str, bytes] = {}
    for rollout_id in SEED_ROLLOUTS:
        out[f"rollout {rollout_id}"] = await unary(
            "GetRollout", s.GetRolloutRequest(rollout_id=rollout_id), s.GetRolloutResponse
        )
        out[f"attempts {rollout_id}"] = await unary(
            "QueryAttempts", s.QueryAttemptsRequest(rollout_id=rollout_id), s.QueryAttemptsResponse
        )
        spans = channel.unary_stream(
            "/agl.v1.LightningStoreService/QuerySpans",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=s.QuerySpansResponse.FromString,
        )
        chunks = [
            c.SerializeToString(deterministic=True) async for c in spans(s.QuerySpansRequest(rollout_id=rollout_id))
        ]
        out[f"spans {rollout_id}"] = b"".join(chunks)
    out["resources"] = await unary(
        "GetResources", s.GetResourcesRequest(resources_id=SEED_RESOURCES), s.GetResourcesResponse
    )
    out["worker"] = await unary(
        "QueryWorkers", s.QueryWorkersRequest(worker_id_in=[SEED_WORKER]), s.QueryWorkersResponse
    )
    assert out["spans " + SEED_ROLLOUTS[0]] and b"step-4" in out["spans " + SEED_ROLLOUTS[0]]
    assert SEED_WORKER.encode() in out["worker"]
    return out


# Span batches the server answered with spans stored: reached only through attempts the fuzz had
# created (IngestSpans needs a real rollout and attempt), so the count shows the live pool at work.
PLACED: collections.Counter[str] = collections.Counter()


def _remember(method: Method, answer: bytes) -> None:
    """Feed the attempts an answer holds to the fuzz (support/fuzz_live.remember_attempts)."""
    with contextlib.suppress(DecodeError):
        message = message_factory.GetMessageClass(method.response).FromString(answer)
        remember_attempts(message)
        if method.path.endswith("/IngestSpans") and message.accepted:
            PLACED["span batches"] += 1


async def _call(channel: grpc.aio.Channel, method: Method, raws: list[bytes]) -> grpc.StatusCode:
    """Make one call with the given request bytes; the status the server ended it with."""
    timeout = (
        (WATCH_DEADLINE if method.path.endswith("/WatchRollouts") else WAITING_DEADLINE) if method.waits else DEADLINE
    )
    if method.client_streaming:
        call = channel.stream_stream(method.path, request_serializer=None, response_deserializer=None)(timeout=timeout)
        try:
            for raw in raws:
                await call.write(raw)
            await call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            # The server ended the call while this client was still writing: grpc's client then
            # reports its own failed write (INTERNAL "Internal error from Core") instead of the
            # server's status, which is lost. Not an answer of the server, so not held against it.
            if await call.code() == grpc.StatusCode.INTERNAL and await call.details() == _CLIENT_WRITE_FAILED:
                return grpc.StatusCode.ABORTED
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for answer in call:
                _remember(method, answer)
    elif method.server_streaming:
        call = channel.unary_stream(method.path, request_serializer=None, response_deserializer=None)(
            raws[0], timeout=timeout
        )
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for answer in call:
                _remember(method, answer)
    else:
        call = channel.unary_unary(method.path, request_serializer=None, response_deserializer=None)(
            raws[0], timeout=timeout
        )
        with contextlib.suppress(grpc.aio.AioRpcError):
            _remember(method, await call)
    code = await call.code()
    if code in FORBIDDEN or (code == grpc.StatusCode.DEADLINE_EXCEEDED and not method.waits):
        raise AssertionError(f"{method.path} answered {code.name}: {await call.details()} to {raws!r}")
    return code


def test_fuzzed_requests_never_harm_the_server_or_its_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    methods = all_methods()
    outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
    loop = asyncio.new_event_loop()
    server = ServerProcess(data_dir, args=["--durability", "nosync"], log_path=tmp_path / "server.log").start()
    try:
        loop.run_until_complete(_seed(server.address))

        async def open_channel() -> grpc.aio.Channel:
            return grpc.aio.insecure_channel(server.address, options=[("grpc.max_send_message_length", 64 << 20)])

        channel = loop.run_until_complete(open_channel())
        before = loop.run_until_complete(_snapshot(channel))

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
        )
        @given(call=calls(methods))
        def fuzz(call: tuple[Method, list[bytes]]) -> None:
            method, raws = call
            code = loop.run_until_complete(_call(channel, method, raws))
            outcomes[(method.path.rsplit("/", 1)[-1], code.name)] += 1
            assert server.alive(), f"agl-server died after {method.path}:\n{server.log_tail()}"

        fuzz()
        assert server.alive(), server.log_tail()
        after = loop.run_until_complete(_snapshot(channel))
        assert after == before, [key for key in before if before[key] != after.get(key)]
        loop.run_until_complete(channel.close())

        # The fuzz reached every method, and the store answered both yes and no.
        reached = {name for name, _ in outcomes}
        assert reached == {m.path.rsplit("/", 1)[-1] for m in methods}, reached
        # It named attempts it had created (support/fuzz_live.remember_attempts), none seeded.
        assert LIVE_ATTEMPTS and not any(r.startswith(SEED_PREFIX) for r, _ in LIVE_ATTEMPTS), LIVE_ATTEMPTS
        # About 1 in 100 calls stores spans that way (11-65 per 2,500-8,000 calls measured).
        assert PLACED["span batches"] > 0 or EXAMPLES < 1_000, PLACED
        codes = collections.Counter(code for _, code in outcomes.elements())
        assert codes["OK"] > EXAMPLES // 10 and codes["INVALID_ARGUMENT"] > EXAMPLES // 10, codes
        print(f"\n{sum(outcomes.values())} calls: {dict(codes)}, {dict(PLACED)}\n{sorted(outcomes.items())}")

        assert server.stop() == 0, server.log_tail()
        server.start()
        channel = loop.run_until_complete(open_channel())
        restarted = loop.run_until_complete(_snapshot(channel))
        assert restarted == before, [key for key in before if before[key] != restarted.get(key)]
        loop.run_until_complete(channel.close())
    finally:
        server.stop()
        loop.close()
