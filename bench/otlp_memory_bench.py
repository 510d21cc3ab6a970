"""OTLP Export memory: agl-server's RSS while it takes Export requests whose spans share a large resource.

agl stores each span with its resource and scope copied in, so a request of N spans sharing a
resource of R bytes amounts to about N * R bytes. The receiver copies the resource into a bounded
chunk of spans at a time (``CHUNK_BYTES``) and refuses a request that would amount to more than
``MAX_EXPANDED_BYTES`` (RESOURCE_EXHAUSTED, which OTLP exporters do not retry). Issue 11 measured,
before that, 235 MB -> 2.8 GB RSS and UNAVAILABLE for the first case below.

Run: ``.venv/bin/python bench/otlp_memory_bench.py``. Prints a table and writes
``bench/results/otlp_memory.json``.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from pathlib import Path

import grpc
import psutil
from common import Report
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2 as otlp

from agl_core.client import GrpcStore
from agl_server.process import ServerProcess

CASES = (  # (resource bytes, spans): the request, then requests under the limit
    (1_000_000, 5_000),
    (100_000, 600),
    (10_000, 5_000),
)


def export_request(rollout_id: str, resource_bytes: int, spans: int) -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attributes = resource_spans.resource.attributes
    attributes.add(key="agl.rollout_id", value=common_pb2.AnyValue(string_value=rollout_id))
    attributes.add(key="blob", value=common_pb2.AnyValue(string_value="r" * resource_bytes))
    scope = resource_spans.scope_spans.add()
    for i in range(spans):
        scope.spans.append(otlp.Span(name=f"s{i}", span_id=i.to_bytes(8, "big"), trace_id=b"t" * 16))
    return request


class PeakRss:
    """Samples a process's RSS every 10 ms in a thread; ``peak`` is the largest seen."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def data_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


async def main() -> None:
    report = Report("OTLP Export memory (resource shared by many spans)")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        with ServerProcess(data, args=["--durability", "nosync"]) as server:
            async with GrpcStore(server.address) as store:
                rollout = await store.start_rollout("bench")
            async with grpc.aio.insecure_channel(
                server.address, options=[("grpc.max_send_message_length", 64 << 20)]
            ) as channel:
                stub = trace_service_pb2_grpc.TraceServiceStub(channel)
                for resource_bytes, spans in CASES:
                    request = export_request(rollout.rollout_id, resource_bytes, spans)
                    size = request.ByteSize()
                    label = f"{resource_bytes / 1e6:g} MB resource x {spans:,} spans ({size / 1e6:.2f} MB request)"
                    before_rss = psutil.Process(server.process.pid).memory_info().rss  # type: ignore[union-attr]
                    before_data = data_bytes(data)
                    started = time.perf_counter()
                    with PeakRss(server.process.pid) as peak:  # type: ignore[union-attr]
                        try:
                            await stub.Export(request, timeout=300)
                            status = "OK"
                        except grpc.aio.AioRpcError as exc:
                            status = exc.code().name
                    seconds = time.perf_counter() - started
                    report.add(f"{label}: status", 0, status, note=status)
                    report.add(f"{label}: RSS before", before_rss / 2**20, "MiB")
                    report.add(f"{label}: RSS peak growth", (peak.peak - before_rss) / 2**20, "MiB")
                    report.add(f"{label}: data dir growth", (data_bytes(data) - before_data) / 2**20, "MiB")
                    report.add(f"{label}: time", seconds, "s")
    print()
    print(report.table())
    print(f"saved {report.save('otlp_memory')}")


if __name__ == "__main__":
    asyncio.run(main())
