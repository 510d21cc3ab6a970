"""The OpenTelemetry tracer against real stores: spans reach the right attempt, acknowledged."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agl_core import semconv
from agl_core.client import GrpcStore
from agl_core.emitter import emit_reward
from agl_core.errors import NotFoundError, UnavailableError
from agl_core.plugins import get_plugin_manager
from agl_core.proto import trace_pb2
from agl_core.store import LightningStore, LmdbStore, SyncStore
from agl_core.tracer import OtelTracer, bind_context
from agl_core.tracer.convert import to_span
from agl_core.types import span_attributes
from agl_server.process import ServerProcess

agent_tracer = trace.get_tracer("test-agent")


async def test_spans_of_async_agent_reach_their_attempt(tracer: OtelTracer, store: LightningStore) -> None:
    rollout = await store.start_rollout({"task": 1})
    attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]

    def in_thread(i: int) -> None:
        with agent_tracer.start_as_current_span(f"thread-{i}"):
            pass

    async with tracer.trace_context(
        "agent", store=store, rollout_id=rollout.rollout_id, attempt_id=attempt_id
    ) as trace_:
        with agent_tracer.start_as_current_span("plan") as plan:
            for i in range(300):
                with agent_tracer.start_as_current_span("step", attributes={"i": i}):
                    pass
        await asyncio.gather(*(asyncio.create_task(asyncio.to_thread(in_thread, i)) for i in range(3)))
        worker = threading.Thread(target=bind_context(in_thread), args=(99,))
        worker.start()
        worker.join()
        emit_reward(0.75)

    assert trace_.stats.spans == 1 + 1 + 300 + 3 + 1 + 1  # root, plan, steps, threads, reward
    assert trace_.stats.delivered == trace_.stats.spans
    stored = await store.query_spans(rollout.rollout_id, attempt_id)
    assert len(stored) == trace_.stats.spans
    assert {s.rollout_id for s in stored} == {rollout.rollout_id}
    assert {s.attempt_id for s in stored} == {attempt_id}
    by_name = {s.name: s for s in stored}
    root = by_name["agent"]
    assert root.parent_span_id == b""
    assert span_attributes(root)[semconv.ROLLOUT_ID] == rollout.rollout_id
    plan_id = plan.get_span_context().span_id.to_bytes(8, "big")
    steps = [s for s in stored if s.name == "step"]
    assert {s.parent_span_id for s in steps} == {plan_id}
    assert sorted(span_attributes(s)["i"] for s in steps) == list(range(300))
    assert by_name["thread-99"].parent_span_id == root.span_id
    assert by_name["thread-0"].parent_span_id == root.span_id
    assert len({s.trace_id for s in stored}) == 1
    assert [s.name for s in tracer.get_last_trace()][-1] == "agent"


def test_sync_agent_with_sync_store_over_grpc(tracer: OtelTracer, server: ServerProcess) -> None:
    with SyncStore(GrpcStore(server.address)) as store:
        rollout = store.start_rollout({"task": 2})
        with tracer.trace_context_sync(
            "sync-agent", store=store, rollout_id=rollout.rollout_id, attempt_id=rollout.attempt.attempt_id
        ) as trace_:
            with agent_tracer.start_as_current_span("tool", kind=SpanKind.CLIENT):
                emit_reward(1.0)
        assert trace_.stats.delivered == 3
        names = sorted(s.name for s in store.query_spans(rollout.rollout_id))
        assert names == ["agl.reward", "sync-agent", "tool"]
        # The attempt got its heartbeat from the spans.
        assert store.get_rollout(rollout.rollout_id).status == "running"


def test_sync_context_with_an_unbound_store_gets_a_private_loop(tracer: OtelTracer, data_dir: Path) -> None:
    store = LmdbStore(data_dir)
    with SyncStore(store) as sync:  # only to create the rollout; the tracer uses `store` itself
        rollout = sync.start_rollout({"task": 3})
        with tracer.trace_context_sync(
            store=sync, rollout_id=rollout.rollout_id, attempt_id=rollout.attempt.attempt_id
        ) as trace_:
            emit_reward(0.5)
        assert trace_.stats.delivered == 2
        assert len(sync.query_spans(rollout.rollout_id)) == 2


def test_back_pressure_bounds_the_queue(server: ServerProcess) -> None:
    tracer = OtelTracer(instrument_openai=False, max_queued_spans=32, max_batch_spans=8, max_inflight_batches=2)
    tracer.init()
    try:
        with SyncStore(GrpcStore(server.address)) as store:
            rollout = store.start_rollout({"task": 4})
            with tracer.trace_context_sync(
                store=store, rollout_id=rollout.rollout_id, attempt_id=rollout.attempt.attempt_id
            ) as trace_:
                for i in range(2000):
                    with agent_tracer.start_as_current_span("s", attributes={"payload": "x" * 256, "i": i}):
                        pass
            sink = trace_.sink
            assert sink is not None
            assert sink.peak_queued <= 32
            assert sink.waits > 0, "the agent never had to wait: the bound was not exercised"
            assert trace_.stats.delivered == 2001
            assert store.stats()["spans"] == 2001
    finally:
        tracer.teardown()


async def test_rejected_spans_make_the_context_raise(tracer: OtelTracer, store: LightningStore) -> None:
    rollout = await store.start_rollout({"task": 5})
    with pytest.raises(NotFoundError, match=r"rejected 2 of 2 spans of rollout 'ro-missing'.*not found"):
        async with tracer.trace_context(store=store, rollout_id="ro-missing", attempt_id="at-missing"):
            emit_reward(1.0)
    # Nothing of the existing rollout changed.
    assert await store.query_spans(rollout.rollout_id) == []


async def test_unreachable_store_fails_the_context_instead_of_hanging(tracer: OtelTracer, data_dir: Path) -> None:
    process = ServerProcess(data_dir).start()
    store = GrpcStore(process.address, reconnect_deadline=0.5)
    rollout = await store.start_rollout({"task": 6})
    process.kill()
    try:
        with pytest.raises(UnavailableError, match=r"2 of 2 spans of rollout .* were not delivered"):
            async with asyncio.timeout(30):
                async with tracer.trace_context(
                    store=store, rollout_id=rollout.rollout_id, attempt_id=rollout.attempt.attempt_id
                ):
                    emit_reward(1.0)
    finally:
        await store.close()


async def test_sync_context_on_the_stores_own_loop_is_refused(tracer: OtelTracer, data_dir: Path) -> None:
    store = LmdbStore(data_dir)
    rollout = await store.start_rollout({"task": 7})
    with pytest.raises(RuntimeError, match="cannot run on the event loop its store lives on"):
        with tracer.trace_context_sync(store=store, rollout_id=rollout.rollout_id, attempt_id="x"):
            pass
    await store.close()


def test_a_store_needs_rollout_and_attempt_ids(tracer: OtelTracer, data_dir: Path) -> None:
    with (
        SyncStore(LmdbStore(data_dir)) as store,
        pytest.raises(ValueError, match="needs rollout_id and attempt_id"),
    ):
        with tracer.trace_context_sync(store=store):
            pass


def test_without_a_store_spans_stay_in_memory_and_outside_spans_are_ignored(tracer: OtelTracer) -> None:
    with agent_tracer.start_as_current_span("before"):
        pass
    with tracer.trace_context_sync("local") as trace_:
        with agent_tracer.start_as_current_span("inside"):
            pass
    with agent_tracer.start_as_current_span("after"):
        pass
    assert [s.name for s in tracer.get_last_trace()] == ["inside", "local"]
    assert trace_.spans == tracer.get_last_trace()


def test_w3c_propagated_parent_finds_its_trace_context(tracer: OtelTracer) -> None:
    carrier: dict[str, str] = {}
    with tracer.trace_context_sync("remote-parent") as trace_:
        TraceContextTextMapPropagator().inject(carrier)

        def elsewhere() -> None:  # a plain thread: no context was handed over, only the header
            ctx = TraceContextTextMapPropagator().extract(carrier)
            token = otel_context.attach(ctx)
            try:
                with agent_tracer.start_as_current_span("downstream"):
                    pass
            finally:
                otel_context.detach(token)

        worker = threading.Thread(target=elsewhere)
        worker.start()
        worker.join()
    assert "downstream" in [s.name for s in trace_.spans]


def test_conversion_matches_the_otlp_encoder() -> None:
    kept = []

    class Keep(SpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            kept.extend(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Keep()))
    otel = provider.get_tracer("conv", "1.2")
    with otel.start_as_current_span("parent") as parent:
        with otel.start_as_current_span(
            "child",
            kind=SpanKind.SERVER,
            attributes={"s": "v", "i": 3, "f": 0.5, "b": True, "ids": [1, 2, 3], "names": ["a", "b"]},
            links=[Link(parent.get_span_context(), {"why": "test"})],
        ) as child:
            child.add_event("happened", {"n": 1})
            child.set_status(Status(StatusCode.ERROR, "broke"))
    request = encode_spans(kept)
    resource_spans = request.resource_spans[0]
    for scope_spans in resource_spans.scope_spans:
        for otlp in scope_spans.spans:
            ours = next(to_span(s, "ro", "at") for s in kept if s.name == otlp.name)
            expected = trace_pb2.Span.FromString(otlp.SerializeToString())
            expected.resource.MergeFromString(resource_spans.resource.SerializeToString())
            expected.scope.MergeFromString(scope_spans.scope.SerializeToString())
            expected.rollout_id, expected.attempt_id = "ro", "at"
            # The SDK's encoder leaves out the W3C trace flags (the low byte of `flags`); agl keeps them.
            source = next(s for s in kept if s.name == otlp.name)
            assert ours.flags & 0xFF == int(source.context.trace_flags)
            ours.flags &= ~0xFF
            for link in ours.links:
                link.flags &= ~0xFF
            assert ours == expected, otlp.name


def test_builtin_plugins_are_registered() -> None:
    pm = get_plugin_manager()
    assert pm.lookup("tracers", "otel").factory is OtelTracer
    assert pm.lookup("tracers", "otel").distribution.startswith("agl ")
    adapters = pm.provided("adapters")
    assert {"triplet", "messages"} <= set(adapters)


async def test_spans_ended_on_the_stores_loop_without_yielding_are_bounded(data_dir: Path) -> None:
    # An async agent on the store's own loop cannot be made to wait inside span.end(); past the hard
    # limit (8 x max_queued_spans) spans are dropped, counted, and the context says so on exit.
    tracer = OtelTracer(instrument_openai=False, max_queued_spans=4)
    tracer.init()
    store = LmdbStore(data_dir)
    try:
        rollout = await store.start_rollout({"task": 8})
        attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
        with pytest.raises(UnavailableError, match=r"69 of 101 spans .* were dropped.*await between spans"):
            async with tracer.trace_context(store=store, rollout_id=rollout.rollout_id, attempt_id=attempt_id) as t:
                for _ in range(100):  # never yields to the loop
                    with agent_tracer.start_as_current_span("busy"):
                        pass
        # 32 queued before the hard limit; the other 68 and the root span (ended at exit) dropped.
        assert t.stats.dropped == 69 and t.stats.delivered == 32
        assert len(await store.query_spans(rollout.rollout_id)) == 32
    finally:
        tracer.teardown()
        await store.close()
