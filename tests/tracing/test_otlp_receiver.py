"""agl-server's OTLP/gRPC receiver, fed by the stock OpenTelemetry exporter and by raw Export calls."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2 as otlp
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from agl_core import semconv
from agl_core.client import GrpcStore
from agl_core.store import SyncStore
from agl_core.types import span_attributes
from agl_server.process import ServerProcess


def exporting_provider(address: str, resource: dict[str, str], **exporter: object) -> TracerProvider:
    """A stock SDK pipeline: TracerProvider -> SimpleSpanProcessor -> OTLPSpanExporter (gRPC)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "external-agent", **resource}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=address, insecure=True, **exporter)))
    return provider


@pytest.fixture
def store(server: ServerProcess) -> Iterator[SyncStore]:
    with SyncStore(GrpcStore(server.address)) as sync:
        yield sync


def test_stock_exporter_lands_spans_in_their_rollout(server: ServerProcess, store: SyncStore) -> None:
    rollout = store.start_rollout({"task": "otlp"})
    other = store.start_rollout({"task": "other"})
    attempt_id = rollout.attempt.attempt_id
    provider = exporting_provider(
        server.address, {semconv.ROLLOUT_ID: rollout.rollout_id, semconv.ATTEMPT_ID: attempt_id}
    )
    tracer = provider.get_tracer("external", "0.1")
    with tracer.start_as_current_span("agent-turn") as turn:
        with tracer.start_as_current_span("chat", attributes={semconv.GEN_AI_OPERATION: "chat", "n": 7}):
            pass
        # A span attribute overrides the resource: this one belongs to the other rollout.
        with tracer.start_as_current_span("elsewhere", attributes={semconv.ROLLOUT_ID: other.rollout_id}):
            pass
    provider.shutdown()

    spans = store.query_spans(rollout.rollout_id)
    assert sorted(s.name for s in spans) == ["agent-turn", "chat"]
    assert {s.attempt_id for s in spans} == {attempt_id}
    chat = next(s for s in spans if s.name == "chat")
    assert chat.parent_span_id == turn.get_span_context().span_id.to_bytes(8, "big")
    assert chat.trace_id == turn.get_span_context().trace_id.to_bytes(16, "big")
    assert span_attributes(chat)["n"] == 7
    assert chat.scope.name == "external" and chat.scope.version == "0.1"
    assert span_attributes(chat.resource)["service.name"] == "external-agent"
    assert chat.sequence_id > 0
    # No attempt id on that span: it went to the other rollout's latest attempt.
    [moved] = store.query_spans(other.rollout_id)
    assert moved.name == "elsewhere" and moved.attempt_id == other.attempt.attempt_id
    # Spans are heartbeats, as on the native stream.
    assert store.get_rollout(rollout.rollout_id).status == "running"


def _request(*spans: tuple[str, dict[str, str]], resource: dict[str, str] | None = None) -> object:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (resource or {}).items():
        resource_spans.resource.attributes.add(key=key, value=common_pb2.AnyValue(string_value=value))
    scope_spans = resource_spans.scope_spans.add()
    for i, (name, attributes) in enumerate(spans):
        span = scope_spans.spans.add(
            trace_id=bytes(range(1, 17)),
            span_id=(i + 1).to_bytes(8, "big"),
            name=name,
            kind=otlp.Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=1_000 + i,
            end_time_unix_nano=2_000 + i,
        )
        for key, value in attributes.items():
            span.attributes.add(key=key, value=common_pb2.AnyValue(string_value=value))
    return request


def test_unplaceable_spans_are_reported_as_partial_success(server: ServerProcess, store: SyncStore) -> None:
    rollout = store.start_rollout({"task": "partial"})
    before = store.stats()["spans"]
    request = _request(
        ("good", {}),
        ("no-such-rollout", {semconv.ROLLOUT_ID: "ro-nope"}),
        ("bad-attempt", {semconv.ATTEMPT_ID: "at-nope"}),
        resource={semconv.ROLLOUT_ID: rollout.rollout_id},
    )
    unplaced = _request(("lost", {}))
    with grpc.insecure_channel(server.address) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        response = stub.Export(request, timeout=10)
        nothing = stub.Export(unplaced, timeout=10)
    assert response.partial_success.rejected_spans == 2
    assert "rollout 'ro-nope' not found" in response.partial_success.error_message
    assert "attempt 'at-nope' not found" in response.partial_success.error_message
    assert nothing.partial_success.rejected_spans == 1
    assert f"without {semconv.ROLLOUT_ID}" in nothing.partial_success.error_message
    assert [s.name for s in store.query_spans(rollout.rollout_id)] == ["good"]
    assert store.stats()["spans"] == before + 1


def test_resent_export_is_not_stored_twice(server: ServerProcess, store: SyncStore) -> None:
    rollout = store.start_rollout({"task": "resend"})
    request = _request(("once", {}), resource={semconv.ROLLOUT_ID: rollout.rollout_id})
    with grpc.insecure_channel(server.address) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        first, second = stub.Export(request, timeout=10), stub.Export(request, timeout=10)
    assert not first.HasField("partial_success") and not second.HasField("partial_success")
    assert [s.name for s in store.query_spans(rollout.rollout_id)] == ["once"]


def test_token_auth_covers_the_receiver(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data", args=["--token", "s3cret"]) as server:
        with SyncStore(GrpcStore(server.address, token="s3cret")) as store:
            rollout = store.start_rollout({"task": "auth"})
            resource = {semconv.ROLLOUT_ID: rollout.rollout_id}
            allowed = exporting_provider(server.address, resource, headers={"authorization": "Bearer s3cret"})
            with allowed.get_tracer("t").start_as_current_span("with-token"):
                pass
            allowed.shutdown()
            with grpc.insecure_channel(server.address) as channel:
                with pytest.raises(grpc.RpcError) as error:
                    trace_service_pb2_grpc.TraceServiceStub(channel).Export(
                        _request(("no-token", {}), resource=resource), timeout=10
                    )
            assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert [s.name for s in store.query_spans(rollout.rollout_id)] == ["with-token"]


def test_blocking_the_plugin_removes_the_service(tmp_path: Path) -> None:
    env = {**os.environ, "AGL_DISABLE_PLUGINS": "service-otlp"}
    with (
        ServerProcess(tmp_path / "data", env=env) as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        with pytest.raises(grpc.RpcError) as error:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(_request(("x", {})), timeout=10)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
