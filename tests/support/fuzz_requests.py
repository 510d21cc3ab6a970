"""Hypothesis strategies for fuzzing agl-server: calls of every RPC, with their request bytes.

Every method of LightningStoreService, RunnerService.Work and OTLP Export, each call's requests
from ``fuzz_payloads``; a Work stream starts with a hello (usually), an OTLP export often names a
rollout so its spans get placed, and a deletion always names an id so it cannot reach the seeded
rollouts.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import descriptor
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from agl_core.proto import runner_pb2, store_pb2
from support.fuzz_messages import ids, message_strategy
from support.fuzz_payloads import length_delimited, payload_strategy


@dataclass(frozen=True)
class Method:
    path: str
    request: descriptor.Descriptor
    response: descriptor.Descriptor
    client_streaming: bool
    server_streaming: bool
    # Methods that wait (long polls, watches, the Work stream): a short deadline, which may expire.
    waits: bool


_WAITING = {"DequeueRollout", "WaitForRollouts", "WatchRollouts", "Work"}


def all_methods() -> list[Method]:
    """Every method of LightningStoreService, RunnerService.Work and OTLP Export."""
    services = [
        store_pb2.DESCRIPTOR.services_by_name["LightningStoreService"],
        runner_pb2.DESCRIPTOR.services_by_name["RunnerService"],
        trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"],
    ]
    return [
        Method(
            path=f"/{service.full_name}/{method.name}",
            request=method.input_type,
            response=method.output_type,
            client_streaming=method.client_streaming,
            server_streaming=method.server_streaming,
            waits=method.name in _WAITING,
        )
        for service in services
        for method in service.methods
    ]


@st.composite
def work_streams(draw: st.DrawFn) -> list[bytes]:
    """A Work stream's messages: a hello (usually) and a few more."""
    hello = runner_pb2.WorkRequest()
    hello.hello.CopyFrom(draw(message_strategy(runner_pb2.WorkerHello.DESCRIPTOR, 1)))
    if draw(st.integers(0, 3)) == 0:
        hello.hello.ClearField("heartbeat_interval")
    any_request = payload_strategy(runner_pb2.WorkRequest.DESCRIPTOR)
    first = hello.SerializeToString() if draw(st.integers(0, 5)) else draw(any_request)
    rest = draw(st.lists(any_request, max_size=3))
    return [first, *rest]


@st.composite
def calls(draw: st.DrawFn, methods: list[Method]) -> tuple[Method, list[bytes]]:
    """A method and the request messages (serialized) of one call to it."""
    method = draw(st.sampled_from(methods))
    if method.path.endswith("/Work"):
        return method, draw(WORK_STREAMS)
    if method.path.endswith("/Export") and draw(st.booleans()):
        return method, [draw(PLACED_EXPORTS)]
    if method.client_streaming:
        return method, draw(st.lists(payload_strategy(method.request), max_size=3))
    if method.path.endswith("/DeleteRollouts"):
        # A selection is the rollouts matching every criterion: an id appended (field 1) keeps any
        # fuzzed age or status from reaching the seeded rollouts, which must read back unchanged.
        return method, [draw(payload_strategy(method.request)) + length_delimited(1, draw(ids()).encode())]
    return method, [draw(payload_strategy(method.request))]


@st.composite
def placed_exports(draw: st.DrawFn) -> bytes:
    """An OTLP Export whose resource names a rollout (usually one the fuzz created), so spans get placed."""
    request = draw(message_strategy(trace_service_pb2.ExportTraceServiceRequest.DESCRIPTOR))
    if not request.resource_spans:
        request.resource_spans.add().scope_spans.add().spans.add(span_id=b"s" * 8, name="fz")
    attribute = request.resource_spans[0].resource.attributes.add(key="agl.rollout_id")
    attribute.value.string_value = draw(ids())
    return request.SerializeToString()


WORK_STREAMS = work_streams()
PLACED_EXPORTS = placed_exports()
