"""OTLP over HTTP (POST /v1/traces) on a real agl-server: the stock exporter, raw JSON, bad input."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from support.http_listener import TOKEN

from agl_core import semconv
from agl_core.client import GrpcStore
from agl_core.store import SyncStore
from agl_core.types import span_attributes
from agl_server.process import ServerProcess

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def store(http_server: ServerProcess) -> Iterator[SyncStore]:
    with SyncStore(GrpcStore(http_server.address)) as sync:
        yield sync


def _provider(url: str, resource: dict[str, str], **exporter: object) -> tuple[TracerProvider, OTLPSpanExporter]:
    """The stock SDK pipeline: TracerProvider -> SimpleSpanProcessor -> OTLPSpanExporter (HTTP/protobuf)."""
    span_exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", **exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": "http-agent", **resource}))
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    return provider, span_exporter


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_stock_http_exporter_lands_spans_in_their_attempt(
    http_server: ServerProcess, store: SyncStore, compression: Compression
) -> None:
    rollout = store.start_rollout({"task": "otlp-http"})
    attempt_id = rollout.attempt.attempt_id
    provider, _ = _provider(
        http_server.http_url,
        {semconv.ROLLOUT_ID: rollout.rollout_id, semconv.ATTEMPT_ID: attempt_id},
        compression=compression,
    )
    tracer = provider.get_tracer("external-http", "0.2")
    with tracer.start_as_current_span("agent-turn") as turn:
        with tracer.start_as_current_span("chat", attributes={"n": 7}):
            pass
    provider.shutdown()
    spans = store.query_spans(rollout.rollout_id)
    assert sorted(s.name for s in spans) == ["agent-turn", "chat"]
    assert {s.attempt_id for s in spans} == {attempt_id}
    chat = next(s for s in spans if s.name == "chat")
    assert chat.parent_span_id == turn.get_span_context().span_id.to_bytes(8, "big")
    assert chat.trace_id == turn.get_span_context().trace_id.to_bytes(16, "big")
    assert span_attributes(chat)["n"] == 7
    assert chat.scope.name == "external-http"
    assert span_attributes(chat.resource)["service.name"] == "http-agent"
    assert store.get_rollout(rollout.rollout_id).status == "running"


def test_stock_exporter_with_the_token(token_server: ServerProcess) -> None:
    with SyncStore(GrpcStore(token_server.address, token=TOKEN)) as store:
        rollout = store.start_rollout({"task": "token"})
        resource = {semconv.ROLLOUT_ID: rollout.rollout_id}
        without, _ = _provider(token_server.http_url, resource)
        tracer = without.get_tracer("t")
        with tracer.start_as_current_span("refused"):
            pass
        provider, _ = _provider(token_server.http_url, resource, headers={"Authorization": f"Bearer {TOKEN}"})
        with provider.get_tracer("t").start_as_current_span("admitted"):
            pass
        provider.shutdown()
        without.shutdown()
        assert [s.name for s in store.query_spans(rollout.rollout_id)] == ["admitted"]


def _json_request(rollout_id: str | None, *names: str, trace_id: str = "5b8efff798038103d269b633813fc60c") -> dict:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "raw-json"}}]}
    if rollout_id:
        resource["attributes"].append({"key": semconv.ROLLOUT_ID, "value": {"stringValue": rollout_id}})
    spans = [
        {
            "traceId": trace_id,
            "spanId": f"{i + 1:016x}",
            "parentSpanId": "" if i == 0 else f"{1:016x}",
            "name": name,
            "kind": 1,
            "startTimeUnixNano": "1544712660000000000",
            "endTimeUnixNano": 1544712661000000000,
            "attributes": [
                {"key": "my.int", "value": {"intValue": "42"}},
                {"key": "my.list", "value": {"arrayValue": {"values": [{"boolValue": True}]}}},
            ],
            "links": [{"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708"}],
            "status": {"code": 2, "message": "bad"},
            "someFutureField": {"ignored": True},
        }
        for i, name in enumerate(names)
    ]
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "raw"}, "spans": spans}]}]}


def test_raw_otlp_json_with_hex_ids(http_server: ServerProcess, store: SyncStore) -> None:
    rollout = store.start_rollout({"task": "json"})
    response = requests.post(
        f"{http_server.http_url}/v1/traces",
        data=json.dumps(_json_request(rollout.rollout_id, "root", "child")),
        headers={"Content-Type": "application/json; charset=utf-8"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {}  # no partial success: everything was placed
    spans = {s.name: s for s in store.query_spans(rollout.rollout_id)}
    assert set(spans) == {"root", "child"}
    child = spans["child"]
    assert child.trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert child.span_id == bytes.fromhex("0000000000000002")
    assert child.parent_span_id == bytes.fromhex("0000000000000001")
    assert child.links[0].trace_id == bytes(range(1, 17))
    assert child.start_time_unix_nano == 1544712660000000000
    assert child.attempt_id == rollout.attempt.attempt_id
    assert span_attributes(child)["my.int"] == 42
    assert span_attributes(child.resource)["service.name"] == "raw-json"


def test_unplaceable_spans_answer_partial_success_in_both_encodings(
    http_server: ServerProcess, store: SyncStore
) -> None:
    rollout = store.start_rollout({"task": "partial"})
    body = _json_request(rollout.rollout_id, "good")
    lost = _json_request(None, "lost")["resourceSpans"][0]
    body["resourceSpans"].append(lost)
    response = requests.post(f"{http_server.http_url}/v1/traces", data=json.dumps(body), headers=JSON, timeout=60)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert f"without {semconv.ROLLOUT_ID}" in partial["errorMessage"]

    request = trace_service_pb2.ExportTraceServiceRequest()
    span = (
        request.resource_spans.add()
        .scope_spans.add()
        .spans.add(trace_id=bytes(16), span_id=bytes(range(8)), name="nowhere")
    )
    span.attributes.add(key=semconv.ROLLOUT_ID, value=common_pb2.AnyValue(string_value="ro-nope"))
    response = requests.post(
        f"{http_server.http_url}/v1/traces", data=request.SerializeToString(), headers=PROTOBUF, timeout=60
    )
    assert response.status_code == 200
    answer = trace_service_pb2.ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "rollout 'ro-nope' not found" in answer.partial_success.error_message
    assert [s.name for s in store.query_spans(rollout.rollout_id)] == ["good"]


def test_bad_input_gets_a_precise_4xx_and_leaves_data_intact(http_server: ServerProcess, store: SyncStore) -> None:
    rollout = store.start_rollout({"task": "bad"})
    url = f"{http_server.http_url}/v1/traces"
    good = requests.post(url, data=json.dumps(_json_request(rollout.rollout_id, "kept")), headers=JSON, timeout=60)
    assert good.status_code == 200
    before = store.stats()["spans"]

    def post(body: bytes, headers: dict[str, str]) -> requests.Response:
        return requests.post(url, data=body, headers=headers, timeout=60)

    # Malformed protobuf: a google.rpc.Status in protobuf.
    response = post(b"\x0a\xff\xff\xff\xff\x0f", PROTOBUF)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/x-protobuf"
    assert b"could not be decoded as an OTLP ExportTraceServiceRequest" in response.content
    # Malformed JSON, JSON of the wrong shape, base64 ids where OTLP/JSON wants hex.
    response = post(b'{"resourceSpans": [', JSON)
    assert response.status_code == 400
    assert response.json()["code"] == 3 and "not valid JSON" in response.json()["message"]
    response = post(b'{"resourceSpans": {"a": 1}}', JSON)
    assert response.status_code == 400 and "$.resourceSpans must be a JSON array" in response.json()["message"]
    base64_ids = _json_request(rollout.rollout_id, "b64", trace_id="W47/95gDgQPSabYzgT/GDA==")
    response = post(json.dumps(base64_ids).encode(), JSON)
    assert response.status_code == 400
    assert "$.resourceSpans[0].scopeSpans[0].spans[0].traceId" in response.json()["message"]
    assert "not hex" in response.json()["message"]
    wrong_type = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5, "traceId": ""}]}]}]})
    response = post(wrong_type.encode(), JSON)
    assert response.status_code == 400 and "ExportTraceServiceRequest" in response.json()["message"]
    # Another content type.
    response = post(b"x", {"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert "application/x-protobuf or application/json" in response.json()["error"]
    response = post(b"x", {})
    assert response.status_code == 415
    # A gzip body that does not inflate.
    response = post(b"not gzip", {**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert b"Can not decode content-encoding: gzip" in response.content

    assert store.stats()["spans"] == before
    assert [s.name for s in store.query_spans(rollout.rollout_id)] == ["kept"]


def test_huge_bodies_get_413(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data", args=["--http-port", "0", "--max-message-mb", "1"], log_path=tmp_path / "server.log"
    ).start()
    try:
        url = f"{server.http_url}/v1/traces"
        huge = b"\x0a" + b"\xff" * (2 * 2**20)
        response = requests.post(url, data=huge, headers=PROTOBUF, timeout=60)
        assert response.status_code == 413
        assert b"at most 1048576 bytes" in response.content
        # Small on the wire, huge once inflated: refused while reading, not after.
        bomb = gzip.compress(b"\x00" * (8 * 2**20))
        assert len(bomb) < 2**20
        response = requests.post(url, data=bomb, headers={**JSON, "Content-Encoding": "gzip"}, timeout=60)
        assert response.status_code == 413
        assert "at most 1048576 bytes" in response.json()["message"]
        with SyncStore(GrpcStore(server.address)) as store:
            assert store.stats()["spans"] == 0
    finally:
        server.stop()


def test_rejections_show_in_metrics_and_log(http_server: ServerProcess) -> None:
    """The stock exporter ignores partial success: the rejection must show in metrics and the log."""
    provider, _ = _provider(http_server.http_url, {})
    with provider.get_tracer("t").start_as_current_span("unplaced"):
        pass
    provider.shutdown()
    metrics = requests.get(f"{http_server.http_url}/metrics", timeout=60).text
    assert 'agl_spans_rejected_total{reason="missing_rollout_id",transport="otlp_http"} 1.0' in metrics
    assert "otlp_http rejected 1 span(s) (missing_rollout_id)" in http_server.log_path.read_text()
