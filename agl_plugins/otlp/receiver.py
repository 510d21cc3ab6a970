"""The OTLP/gRPC trace receiver: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``.

Any OpenTelemetry SDK exporting with its OTLP gRPC exporter to agl-server lands its spans in the
store. Each span is placed in a rollout and attempt by the attributes ``agl.rollout_id`` and
``agl.attempt_id``, looked up on the span first, then on its instrumentation scope, then on its
resource (the most specific wins: a process serving many rollouts sets them per span, a process
per rollout sets them once on its resource). The pair moves together: a level that sets a rollout
id takes the attempt id of that level (or of a more specific one), never one from a level above,
which belonged to another rollout. Without an attempt id the span goes to the rollout's latest
attempt at the time of the export. Spans are written through the store
backend's ``ingest_spans``, so the Export answers only once they are durable: each span with its
resource and scope copied in, a chunk of about ``CHUNK_BYTES`` at a time, so memory per request
stays bounded however many spans share a large resource. A request that would amount to more
than ``MAX_EXPANDED_BYTES`` that way is refused whole with RESOURCE_EXHAUSTED (not retried by
exporters) before anything is stored.

Spans that cannot be placed (no rollout id, an unknown rollout or attempt, malformed ids) are
reported as OTLP partial success: ``partial_success.rejected_spans`` counts them and
``error_message`` says why; the others are stored. Token auth applies as to every agl-server method.

Requests are parsed straight into ``agl.v1.Span`` messages: agl's span message keeps OTLP's field
numbers, so a request-shaped message whose spans are agl spans reads the OTLP wire bytes as they
are, with no conversion step.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from agl_core import semconv
from agl_core.errors import AglError, ResourceExhaustedError
from agl_core.proto import store_pb2, trace_pb2
from agl_core.store import validation
from agl_core.store.backend import StoreBackend
from agl_core.store.span_outcomes import SpanOutcomes, reason_for_code

logger = logging.getLogger("agl_server.otlp")

SERVICE_NAME = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name
EXPORT = f"/{SERVICE_NAME}/Export"
# How many distinct reasons the error message of a partial success lists.
_MAX_REASONS = 5
_COORDINATES = (semconv.ROLLOUT_ID, semconv.ATTEMPT_ID)
# Spans handed to the store at once, counted with the resource and scope copied into each.
CHUNK_BYTES = 4 * 2**20
# The most one Export may amount to with the resource and scope copied into each span (the
# store keeps them per span): 5,000 spans sharing a 1 MB resource would be 5 GB.
MAX_EXPANDED_BYTES = 64 * 2**20


def _request_class() -> type[Any]:
    """ExportTraceServiceRequest with agl's Span, SpanResource and InstrumentationScope inside."""
    pool = descriptor_pool.Default()
    full_name = "agl.internal.otlp.ExportTraceServiceRequest"
    try:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))
    except KeyError:
        pass
    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="agl/internal/otlp_export.proto",
        package="agl.internal.otlp",
        syntax="proto3",
        dependency=[trace_pb2.DESCRIPTOR.name],
    )

    def message(name: str, fields: Iterable[tuple[str, int, int, int, str]]) -> None:
        proto = file.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            field = proto.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name

    one, many = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    msg, text = F.TYPE_MESSAGE, F.TYPE_STRING
    message(
        "ScopeSpans",
        [
            ("scope", 1, msg, one, ".agl.v1.InstrumentationScope"),
            ("spans", 2, msg, many, ".agl.v1.Span"),
            ("schema_url", 3, text, one, ""),
        ],
    )
    message(
        "ResourceSpans",
        [
            ("resource", 1, msg, one, ".agl.v1.SpanResource"),
            ("scope_spans", 2, msg, many, ".agl.internal.otlp.ScopeSpans"),
            ("schema_url", 3, text, one, ""),
        ],
    )
    message("ExportTraceServiceRequest", [("resource_spans", 1, msg, many, ".agl.internal.otlp.ResourceSpans")])
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))


ExportRequest = _request_class()


def _coordinates(attributes: Iterable[trace_pb2.KeyValue], inherited: dict[str, str]) -> dict[str, str]:
    """The rollout coordinates at one level (resource, scope, span), given those of the level above.

    A level that names a rollout starts afresh: an attempt id inherited from above belonged to
    the rollout named there, not to this one.
    """
    found: dict[str, str] | None = None
    for kv in attributes:
        if kv.key not in _COORDINATES:
            continue
        if kv.value.WhichOneof("value") == "string_value" and kv.value.string_value:
            if found is None:
                found = {}
            found[kv.key] = kv.value.string_value
    if found is None:
        return inherited
    if semconv.ROLLOUT_ID in found:
        return found
    return {**inherited, **found}


class ExportTooLargeError(ResourceExhaustedError):
    """An Export whose spans, each with its resource and scope, exceed :data:`MAX_EXPANDED_BYTES`."""


def _check_expanded_size(request: Any) -> None:
    """Refuse a request whose spans, each with its resource and scope, exceed the limit."""
    total = 0
    for resource_spans in request.resource_spans:
        resource_size = resource_spans.resource.ByteSize()
        for scope_spans in resource_spans.scope_spans:
            shared = resource_size + scope_spans.scope.ByteSize()
            total += len(scope_spans.spans) * shared + sum(span.ByteSize() for span in scope_spans.spans)
    if total > MAX_EXPANDED_BYTES:
        raise ExportTooLargeError(
            f"the Export request holds {total / 2**20:.1f} MiB of spans once each span carries its resource and "
            f"scope (agl stores them per span); the limit is {MAX_EXPANDED_BYTES / 2**20:.0f} MiB per request: "
            "export fewer spans per request (the SDK's max_export_batch_size) or a smaller resource"
        )


class _Batch:
    """Spans on their way to the store, written a chunk at a time; counts what was stored or rejected."""

    def __init__(self, backend: StoreBackend) -> None:
        self.backend = backend
        self.spans: list[trace_pb2.Span] = []
        self.size = 0
        self.stored = 0
        self.rejected = 0
        self.duplicate = 0
        self.reasons: dict[str, int] = {}
        # Per metric label: how many, and the first reason given (for the log).
        self.labels: dict[str, tuple[int, str]] = {}

    def reject(self, reason: str, label: str, count: int = 1) -> None:
        self.rejected += count
        self.reasons[reason] = self.reasons.get(reason, 0) + count
        seen, first = self.labels.get(label, (0, reason))
        self.labels[label] = (seen + count, first)

    async def add(self, span: trace_pb2.Span, size: int) -> None:
        self.spans.append(span)
        self.size += size
        if self.size >= CHUNK_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if not self.spans:
            return
        spans, self.spans, self.size = self.spans, [], 0
        result = await self.backend.ingest_spans(spans)
        del spans
        for error in result.rejected:
            self.reject(error.message.split(": ", 1)[-1], reason_for_code(error.code))  # without "spans[i]: "
        self.stored += result.accepted + len(result.duplicate_indices)
        self.duplicate += len(result.duplicate_indices)


class OtlpTraceService:
    """The TraceService over a store backend; ``register(server)`` adds it to a gRPC server."""

    def __init__(self, backend: StoreBackend) -> None:
        self.backend = backend
        self.exported = 0
        self.rejected = 0
        # What became of the spans of each transport (metrics and rate-limited logs of rejections).
        self.outcomes = {
            "grpc": SpanOutcomes("otlp_grpc", logger),
            "http": SpanOutcomes("otlp_http", logger),
        }

    def register(self, server: grpc.aio.Server) -> list[str]:
        handler = grpc.unary_unary_rpc_method_handler(
            self.Export,
            request_deserializer=ExportRequest.FromString,
            response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
        )
        handlers = {"Export": handler}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        with contextlib.suppress(AttributeError):  # registered methods skip the generic lookup (grpc >= 1.62)
            server.add_registered_method_handlers(SERVICE_NAME, handlers)
        return [SERVICE_NAME]

    async def Export(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await self.export(request, "grpc")
        except AglError as exc:
            await context.abort(exc.code, exc.message)
        except Exception as exc:
            logger.exception("OTLP Export failed")
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"agl-server could not store the spans: {exc}")

    async def export(self, request: Any, transport: str = "grpc") -> trace_service_pb2.ExportTraceServiceResponse:
        """Place and store the spans of one Export request; returns the OTLP response.

        ``transport`` (``grpc`` or ``http``) says which :attr:`outcomes` count the spans.

        Each span is handed to the store with its resource and scope copied in, a chunk of about
        :data:`CHUNK_BYTES` at a time, so memory per request stays bounded however many spans
        share one large resource; a request that would expand past :data:`MAX_EXPANDED_BYTES`
        is refused whole (RESOURCE_EXHAUSTED) before anything is stored.
        """
        try:
            _check_expanded_size(request)
        except ExportTooLargeError as exc:
            count = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
            self.outcomes[transport].reject("request_too_large", count, exc.message)
            raise
        batch = _Batch(self.backend)
        latest: dict[str, str | None] = {}
        for resource_spans in request.resource_spans:
            resource = resource_spans.resource
            resource_size = resource.ByteSize()
            from_resource = _coordinates(resource.attributes, {})
            for scope_spans in resource_spans.scope_spans:
                scope = scope_spans.scope
                scope_size = scope.ByteSize()
                from_scope = _coordinates(scope.attributes, from_resource)
                for span in scope_spans.spans:
                    coordinates = _coordinates(span.attributes, from_scope)
                    rollout_id = coordinates.get(semconv.ROLLOUT_ID)
                    if not rollout_id:
                        batch.reject(
                            f"spans without {semconv.ROLLOUT_ID} (set it as a resource, scope or span attribute)",
                            "missing_rollout_id",
                        )
                        continue
                    if not validation.id_fits(rollout_id):
                        batch.reject(
                            f"{semconv.ROLLOUT_ID} longer than {validation.MAX_ID_BYTES} bytes", "invalid_rollout_id"
                        )
                        continue
                    attempt_id = coordinates.get(semconv.ATTEMPT_ID)
                    if not attempt_id:
                        if rollout_id not in latest:
                            latest[rollout_id] = await self._latest_attempt(rollout_id)
                        attempt_id = latest[rollout_id]
                        if attempt_id is None:
                            batch.reject(f"rollout {rollout_id!r} not found or without an attempt", "unknown_rollout")
                            continue
                    # A copy: the request's own spans stay as they are, so only the chunk in hand
                    # holds spans with the resource copied in.
                    placed = trace_pb2.Span()
                    placed.CopyFrom(span)
                    placed.rollout_id = rollout_id
                    placed.attempt_id = attempt_id
                    placed.sequence_id = 0  # the store orders spans as they arrive
                    try:
                        validation.check_span(placed, "span")
                    except AglError as exc:
                        batch.reject(exc.message.removeprefix("span."), "invalid_span")
                        continue
                    if resource_size:
                        placed.resource.CopyFrom(resource)
                    if scope_size:
                        placed.scope.CopyFrom(scope)
                    await batch.add(placed, span.ByteSize() + resource_size + scope_size)
        await batch.flush()
        self.exported += batch.stored
        self.rejected += batch.rejected
        outcomes = self.outcomes[transport]
        outcomes.stored(batch.stored - batch.duplicate, batch.duplicate)
        for label, (count, first) in batch.labels.items():
            outcomes.reject(label, count, first)
        response = trace_service_pb2.ExportTraceServiceResponse()
        if batch.rejected:
            reasons = batch.reasons
            listed = sorted(reasons.items(), key=lambda item: -item[1])[:_MAX_REASONS]
            summary = "; ".join(f"{count} x {reason}" for reason, count in listed)
            more = f"; and {len(reasons) - _MAX_REASONS} other reasons" if len(reasons) > _MAX_REASONS else ""
            response.partial_success.rejected_spans = batch.rejected
            response.partial_success.error_message = f"agl-server rejected {batch.rejected} spans: {summary}{more}"
        return response

    @staticmethod
    def parse_request(raw: bytes) -> Any:
        """An OTLP ExportTraceServiceRequest's bytes, read straight into agl spans (see the module)."""
        return ExportRequest.FromString(raw)

    async def _latest_attempt(self, rollout_id: str) -> str | None:
        try:
            response = await self.backend.get_rollout(store_pb2.GetRolloutRequest(rollout_id=rollout_id))
        except AglError:
            return None
        return response.rollout.attempt.attempt_id or None


__all__ = ["EXPORT", "SERVICE_NAME", "ExportRequest", "ExportTooLargeError", "OtlpTraceService"]
