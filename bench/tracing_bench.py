"""Tracing benchmark: the agent-side cost of agl's tracer, and span ingestion through agl-server.

Part 1, agent side: one agent thread makes N spans (the same ~1 KB of attributes each) inside a
trace context whose store is a GrpcStore to a real agl-server child process. Compared with the
same spans on an OpenTelemetry SDK provider that has no processor at all. Reported per span:
the time the agent spends producing spans, and the time until the context exits (every span
acknowledged by the server). Part 1 also times the OTel-to-agl conversion two ways (direct, and
through the OTLP exporter's encoder plus a re-parse), which decided how the tracer converts.

Part 2, server side, same server, same span payload: spans/s into the store through
- the native ingestion stream (``GrpcStore.add_spans``, batches of 512, 8 calls in flight);
- the OTLP receiver (``TraceService/Export``, requests of 512 spans, 8 in flight);
- the stock OpenTelemetry pipeline (SDK spans -> BatchSpanProcessor -> OTLPSpanExporter).

Run: ``.venv/bin/python bench/tracing_bench.py [--spans N] [--durability sync|nosync]``.
Prints a table and writes ``bench/results/tracing_bench.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from agl_core import semconv
from agl_core.client import GrpcStore
from agl_core.proto import trace_pb2
from agl_core.store import SyncStore
from agl_core.tracer import OtelTracer
from agl_core.tracer.convert import to_span
from agl_server.process import ServerProcess

RESULTS = Path(__file__).parent / "results" / "tracing_bench.json"
ATTRIBUTES: dict[str, Any] = {f"payload.{i}": "x" * 90 for i in range(10)}
ATTRIBUTES.update({"step": 0, "score": 0.5, "ok": True})


# --- part 1: the agent side ---------------------------------------------------------------------


def make_spans(otel_tracer: Any, count: int) -> float:
    """Make ``count`` spans; returns seconds."""
    start = time.perf_counter()
    for _ in range(count):
        with otel_tracer.start_as_current_span("step", attributes=ATTRIBUTES):
            pass
    return time.perf_counter() - start


def record_spans(count: int, resource: Resource | None = None) -> list[Any]:
    """``count`` finished SDK spans with the bench payload."""
    kept: list[Any] = []

    class Keep(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            kept.extend(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(Keep()))
    make_spans(provider.get_tracer("bench"), count)
    return kept


def _span_bytes() -> int:
    return len(to_span(record_spans(1)[0], "ro-bench", "at-bench").SerializeToString())


def agent_side(store: SyncStore, count: int, repeats: int) -> dict[str, Any]:
    """Runs in an agent thread; ``store`` reaches the GrpcStore living on the main event loop."""
    plain = TracerProvider().get_tracer("bench")  # the SDK with no processor at all
    tracer = OtelTracer(instrument_openai=False, keep_spans=False)
    tracer.init()
    agl = tracer._provider.get_tracer("bench")  # type: ignore[union-attr]
    baseline, producing, total = [], [], []
    for _ in range(repeats):
        baseline.append(make_spans(plain, count))
        rollout = store.start_rollout({"bench": "agent-side"})
        began = time.perf_counter()
        with tracer.trace_context_sync(
            store=store, rollout_id=rollout.rollout_id, attempt_id=rollout.attempt.attempt_id
        ) as trace_:
            producing.append(make_spans(agl, count))
        total.append(time.perf_counter() - began)
        assert trace_.stats.delivered == count + 1, trace_.stats
    tracer.teardown()
    per = lambda xs: statistics.median(xs) / count * 1e6  # noqa: E731
    return {
        "spans": count,
        "repeats": repeats,
        "sdk_without_processor_us_per_span": per(baseline),
        "agl_producing_us_per_span": per(producing),
        "agl_until_acknowledged_us_per_span": per(total),
        "agl_overhead_us_per_span": per(producing) - per(baseline),
    }


def conversion(count: int) -> dict[str, Any]:
    kept = record_spans(count)
    start = time.perf_counter()
    for span in kept:
        to_span(span, "ro", "at")
    direct = time.perf_counter() - start
    start = time.perf_counter()
    request = encode_spans(kept)
    for resource_spans in request.resource_spans:
        resource = resource_spans.resource.SerializeToString()
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.SerializeToString()
            for otlp in scope_spans.spans:
                span = trace_pb2.Span.FromString(otlp.SerializeToString())
                span.resource.MergeFromString(resource)
                span.scope.MergeFromString(scope)
                span.rollout_id, span.attempt_id = "ro", "at"
    encoder = time.perf_counter() - start
    return {
        "direct_us_per_span": direct / count * 1e6,
        "otlp_encoder_reparse_us_per_span": encoder / count * 1e6,
    }


# --- part 2: the server side --------------------------------------------------------------------


def payload_spans(rollout_id: str, attempt_id: str, count: int) -> list[trace_pb2.Span]:
    kept = record_spans(count, Resource.create({"service.name": "bench"}))
    return [to_span(span, rollout_id, attempt_id) for span in kept]


async def native(store: GrpcStore, spans: list[trace_pb2.Span], batch: int, inflight: int) -> float:
    gate = asyncio.Semaphore(inflight)

    async def send(chunk: list[trace_pb2.Span]) -> None:
        async with gate:
            result = await store.add_spans(chunk)
            assert result.accepted == len(chunk), result

    start = time.perf_counter()
    await asyncio.gather(*(send(spans[i : i + batch]) for i in range(0, len(spans), batch)))
    return time.perf_counter() - start


def otlp_requests(spans: list[trace_pb2.Span], rollout_id: str, batch: int) -> list[Any]:
    """The same spans as OTLP Export requests (ids on the resource, as an OTel SDK would send them)."""
    requests = []
    for i in range(0, len(spans), batch):
        request = trace_service_pb2.ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.MergeFromString(spans[0].resource.SerializeToString())
        resource_spans.resource.attributes.add(key=semconv.ROLLOUT_ID).value.string_value = rollout_id
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.MergeFromString(spans[0].scope.SerializeToString())
        for span in spans[i : i + batch]:
            plain = trace_pb2.Span()
            plain.CopyFrom(span)
            plain.ClearField("resource")
            plain.ClearField("scope")
            plain.ClearField("rollout_id")
            plain.ClearField("attempt_id")
            scope_spans.spans.add().MergeFromString(plain.SerializeToString())
        requests.append(request)
    return requests


async def otlp(address: str, requests: list[Any], inflight: int) -> float:
    async with grpc.aio.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        await channel.channel_ready()
        gate = asyncio.Semaphore(inflight)

        async def send(request: Any) -> None:
            async with gate:
                response = await stub.Export(request, timeout=60)
                assert not response.partial_success.rejected_spans, response

        start = time.perf_counter()
        await asyncio.gather(*(send(r) for r in requests))
        return time.perf_counter() - start


def stock_exporter(address: str, rollout_id: str, count: int) -> float:
    provider = TracerProvider(resource=Resource.create({"service.name": "bench", semconv.ROLLOUT_ID: rollout_id}))
    processor = BatchSpanProcessor(
        OTLPSpanExporter(endpoint=address, insecure=True), max_queue_size=count + 1, max_export_batch_size=512
    )
    provider.add_span_processor(processor)
    start = time.perf_counter()
    make_spans(provider.get_tracer("bench"), count)
    provider.force_flush(timeout_millis=300_000)
    elapsed = time.perf_counter() - start
    provider.shutdown()
    return elapsed


async def server_side(store: GrpcStore, count: int, repeats: int, batch: int, inflight: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"native_stream": [], "otlp_receiver": [], "stock_otlp_exporter": []}
    for _ in range(repeats):
        rollout = await store.start_rollout({"bench": "native"})
        spans = payload_spans(rollout.rollout_id, rollout.attempt.attempt_id, count)  # type: ignore[union-attr]
        rates["native_stream"].append(count / await native(store, spans, batch, inflight))
        rollout = await store.start_rollout({"bench": "otlp"})
        requests = otlp_requests(spans, rollout.rollout_id, batch)
        rates["otlp_receiver"].append(count / await otlp(store.address, requests, inflight))
        rollout = await store.start_rollout({"bench": "stock"})
        stock_count = max(1000, count // 4)  # the SDK's own span making dominates; fewer spans suffice
        seconds = await asyncio.to_thread(stock_exporter, store.address, rollout.rollout_id, stock_count)
        rates["stock_otlp_exporter"].append(stock_count / seconds)
        assert len(await store.query_spans(rollout.rollout_id)) == stock_count
    return {
        "spans_per_run": count,
        "repeats": repeats,
        "batch": batch,
        "inflight": inflight,
        "spans_per_second": {name: statistics.median(values) for name, values in rates.items()},
        "all_runs": rates,
        "spans_stored": (await store.stats())["spans"],
    }


async def measure(address: str, spans: int, repeats: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Everything on one event loop (grpc.aio dislikes channels outliving their loops)."""
    store = GrpcStore(address)
    try:
        await store.wait_ready()
        agent = await asyncio.to_thread(agent_side, SyncStore(store), spans, repeats)
        ingest = await server_side(store, spans, repeats, batch=512, inflight=8)
    finally:
        await store.close()
    return agent, ingest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000, help="spans per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--durability", choices=("sync", "nosync"), default="sync")
    args = parser.parse_args()
    span_bytes = _span_bytes()
    with tempfile.TemporaryDirectory() as data_dir:
        server = ServerProcess(Path(data_dir) / "data", args=["--durability", args.durability]).start()
        try:
            agent, ingest = asyncio.run(measure(server.address, args.spans, args.repeats))
            convert = conversion(min(args.spans, 5000))
        finally:
            server.stop()
    results = {
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "span_bytes": span_bytes,
        "durability": args.durability,
        "agent_side": agent,
        "conversion": convert,
        "ingestion": ingest,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    rates = ingest["spans_per_second"]
    rows = [
        ("agent side (one thread, median)", "µs/span", None),
        ("  OTel SDK, no processor", agent["sdk_without_processor_us_per_span"], ".1f"),
        ("  agl tracer, producing spans", agent["agl_producing_us_per_span"], ".1f"),
        (
            "  agl tracer, until all acknowledged by agl-server",
            agent["agl_until_acknowledged_us_per_span"],
            ".1f",
        ),
        ("  agl overhead (producing - no processor)", agent["agl_overhead_us_per_span"], ".1f"),
        ("conversion of a finished span to agl.v1.Span", "µs/span", None),
        ("  direct (what the tracer does)", convert["direct_us_per_span"], ".1f"),
        ("  OTLP encoder + re-parse", convert["otlp_encoder_reparse_us_per_span"], ".1f"),
        ("ingestion into agl-server (median)", "spans/s", None),
        ("  native stream (GrpcStore.add_spans)", rates["native_stream"], ".0f"),
        ("  OTLP receiver (TraceService/Export)", rates["otlp_receiver"], ".0f"),
        ("  stock OTel SDK + OTLP exporter, end to end", rates["stock_otlp_exporter"], ".0f"),
    ]
    print(
        f"tracing bench: {args.spans} spans x {args.repeats} runs, {span_bytes}-byte spans, "
        f"agl-server durability={args.durability}, {os.cpu_count()} CPUs"
    )
    for label, value, fmt in rows:
        if fmt is None:
            print(f"\n{label:<52}{value:>10}")
        else:
            print(f"{label:<52}{value:>10{fmt}}")
    print(f"\nresults saved to {RESULTS}")


if __name__ == "__main__":
    main()
