"""/metrics of a real agl-server after real activity, read with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from support.http_listener import scrape
from support.waits import until

from agl_core.client import GrpcStore
from agl_core.errors import NotFoundError
from agl_core.proto import runner_pb2 as r
from agl_core.proto import runner_pb2_grpc
from agl_core.proto import types_pb2 as t
from agl_core.types import new_span
from agl_server.process import ServerProcess


async def test_metrics_follow_rollouts_spans_attempts_and_workers(
    http_server: ServerProcess, grpc_store: GrpcStore, http: aiohttp.ClientSession
) -> None:
    before = await scrape(http, http_server)
    assert before["agl_queue_depth"] == 0
    assert before["agl_rollouts{status=queuing}"] == 0

    # Three queued, one dequeued (an attempt starts), one that times out and is retried.
    await grpc_store.enqueue_rollouts([{"input": {"n": i}} for i in range(3)])
    running = await grpc_store.dequeue_rollout(worker_id="metrics-test")
    assert running is not None
    retried = await grpc_store.start_rollout(
        {"task": "slow"}, config={"timeout_seconds": 0.2, "max_attempts": 2, "retry_condition": ["timeout"]}
    )

    # Spans: two stored, one resent (a duplicate), one for an attempt that does not exist (rejected).
    spans = [new_span(f"s{i}", rollout_id=running.rollout_id, attempt_id=running.attempt.attempt_id) for i in range(2)]
    result = await grpc_store.add_spans(spans)
    assert result.accepted == 2
    again = await grpc_store.add_spans(spans[:1])
    assert again.duplicates == 1
    stray = await grpc_store.add_spans([new_span("stray", rollout_id=running.rollout_id, attempt_id="at-nope")])
    assert len(stray.rejected) == 1
    # An OTLP/gRPC span with no rollout to go to.
    export = trace_service_pb2.ExportTraceServiceRequest()
    export.resource_spans.add().scope_spans.add().spans.add(trace_id=bytes(16), span_id=bytes(8), name="lost")
    async with grpc.aio.insecure_channel(http_server.address) as channel:
        answer = await trace_service_pb2_grpc.TraceServiceStub(channel).Export(export, timeout=60)
    assert answer.partial_success.rejected_spans == 1

    # A write whose operation fails in the store's writer: rolled back alone, its group run again.
    with pytest.raises(NotFoundError):
        await grpc_store.update_rollout("ro-missing", status="succeeded")

    async def retried_once() -> bool:
        samples = await scrape(http, http_server)
        return samples.get("agl_attempts_retried_total", 0) >= 1

    await until(retried_once, timeout=60, what="the timed-out attempt being retried")
    after = await scrape(http, http_server)
    assert (await grpc_store.get_rollout(retried.rollout_id)).status == "requeuing"
    # The timed-out rollout is back in the queue with the two never dequeued.
    assert after["agl_queue_depth"] == 3
    assert after["agl_rollouts{status=requeuing}"] == 1
    assert after["agl_rollouts{status=queuing}"] == 2
    assert after["agl_rollouts{status=preparing}"] == 1 or after["agl_rollouts{status=running}"] == 1
    assert after["agl_attempts_started_total"] == 2  # the dequeue and the start_rollout
    assert after["agl_attempts_timed_out_total"] == 1
    assert after["agl_attempts_unresponsive_total"] == 0
    assert after["agl_spans_stored"] == 2
    assert after["agl_spans_accepted_total{transport=grpc}"] == 2
    assert after["agl_spans_duplicate_total{transport=grpc}"] == 1
    assert after["agl_spans_rejected_total{reason=not_found,transport=grpc}"] == 1
    assert after["agl_spans_rejected_total{reason=missing_rollout_id,transport=otlp_grpc}"] == 1
    assert after["agl_spans_accepted_total{transport=otlp_grpc}"] == 0
    assert after["agl_ingest_batch_spans_count"] == 3
    assert after["agl_ingest_batch_spans_sum"] == 4
    assert after["agl_ingest_ack_seconds_count"] == 3
    assert after["agl_store_commit_seconds_count"] >= 5
    assert after["agl_store_commit_groups_total"] >= after["agl_store_commit_seconds_count"]
    assert after["agl_store_group_reruns_total"] >= 1
    # Every group's commit is timed as a part of the group's time.
    assert after["agl_store_commit_flush_seconds_count"] == after["agl_store_commit_seconds_count"]
    assert 0 < after["agl_store_commit_flush_seconds_sum"] <= after["agl_store_commit_seconds_sum"]
    assert after["agl_lmdb_data_bytes"] > 0
    assert 0 < after["agl_lmdb_map_used_ratio"] < 1
    assert after["agl_lmdb_file_bytes"] > 0
    assert after["process_resident_memory_bytes"] > 0
    assert after["agl_work_streams_open"] == 0


async def test_work_streams_and_unresponsive_attempts(
    http_server: ServerProcess, grpc_store: GrpcStore, http: aiohttp.ClientSession
) -> None:
    await grpc_store.enqueue_rollout({"task": "held"})
    async with grpc.aio.insecure_channel(http_server.address) as channel:
        call = runner_pb2_grpc.RunnerServiceStub(channel).Work()
        await call.write(r.WorkRequest(hello=r.WorkerHello(worker_id="wk-metrics", capacity=2)))
        kinds = set()
        async with asyncio.timeout(60):
            while "assignment" not in kinds:
                response = await call.read()
                kinds.add(response.WhichOneof("kind"))
        samples = await scrape(http, http_server)
        assert samples["agl_work_streams_open"] == 1
        assert samples["agl_workers_connected"] == 1
        assert samples["agl_workers_capacity"] == 2
        assert samples["agl_workers_attempts_held"] == 1
        # The welcome's write of the worker record (coalesced writes: see worker_writes.py).
        assert samples["agl_worker_record_updates_total"] >= 1
        assert 1 <= samples["agl_worker_record_writes_total"] <= samples["agl_worker_record_updates_total"]
        # A heartbeat refreshes the attempt the worker holds (coalesced: see attempt_heartbeats.py).
        assert samples["agl_attempt_heartbeats_total"] == 0
        await call.write(r.WorkRequest(heartbeat=r.WorkerHeartbeat()))

        async def beat_written() -> bool:
            return (await scrape(http, http_server))["agl_attempt_heartbeats_total"] == 1

        await until(beat_written, timeout=30, what="the held attempt's heartbeat written")
        assert (await scrape(http, http_server))["agl_attempt_heartbeat_writes_total"] == 1
        call.cancel()  # the worker goes away holding its attempt: it is given up as unresponsive

    async def given_up() -> bool:
        samples = await scrape(http, http_server)
        return samples["agl_attempts_unresponsive_total"] == 1 and samples["agl_work_streams_open"] == 0

    await until(given_up, timeout=60, what="the held attempt marked unresponsive")
    samples = await scrape(http, http_server)
    assert samples["agl_workers_connected"] == 0
    assert samples["agl_rollouts_ended_total{status=failed}"] == 1  # max_attempts 1: no retry
    assert samples["agl_attempts_started_total"] == 1

    # A worker that starts on assignment: its attempts are claimed RUNNING (no PREPARING event)
    # and are counted as started all the same.
    await grpc_store.enqueue_rollouts([{"input": {"task": "eager"}}, {"input": {"task": "eager"}}])
    async with grpc.aio.insecure_channel(http_server.address) as channel:
        call = runner_pb2_grpc.RunnerServiceStub(channel).Work()
        hello = r.WorkerHello(worker_id="wk-eager", capacity=2, start_on_assignment=True)
        await call.write(r.WorkRequest(hello=hello))
        statuses = []
        async with asyncio.timeout(60):
            while len(statuses) < 2:
                response = await call.read()
                if response.WhichOneof("kind") == "assignment":
                    statuses.append(response.assignment.rollout.attempt.status)
        assert statuses == [t.ATTEMPT_STATUS_RUNNING] * 2
        samples = await scrape(http, http_server)
        assert samples["agl_attempts_started_total"] == 3
        assert samples["agl_rollouts{status=running}"] == 2
        call.cancel()


async def test_openmetrics_is_served_when_asked(http_server: ServerProcess, http: aiohttp.ClientSession) -> None:
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
    async with http.get(f"{http_server.http_url}/metrics", headers=headers) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await response.text()).rstrip().endswith("# EOF")


async def test_every_agl_metric_is_listed_in_the_operations_guide(
    http_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    families = {name.split("{")[0] for name in await scrape(http, http_server)}
    # A sample's family: counters' samples end in _total, histograms' in _bucket, _sum and _count.
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in families if name.startswith("agl_")}
    assert {"agl_span_id_filters", "agl_rollouts", "agl_store_commit_seconds"} <= families
    assert sorted(name for name in families if name not in guide) == []
