"""``GET /metrics``: Prometheus metrics of agl-server.

Most metrics are read at scrape time from what the server keeps anyway: the store's statistics
(``GetStats``: rollouts by status, queue depth, counts, LMDB size), the writer's commit counts,
the ingest budget, the open Work streams, and each span entry point's outcome counts. The few
that need counting as things happen live in :class:`agl_server.metrics.ServerMetrics`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import PlatformCollector, ProcessCollector, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from agl_core.proto import store_pb2 as s
from agl_server import span_checks
from agl_server.http.context import HttpContext

logger = logging.getLogger("agl_server.http")


class ServerCollector(Collector):
    """Turns a snapshot of the server's state into metric families (``snapshot`` is refreshed by the
    handler before each scrape, on the event loop, where the store may be read)."""

    def __init__(self, ctx: HttpContext) -> None:
        self.ctx = ctx
        self.stats: s.GetStatsResponse | None = None

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: the families depend on what the server holds

    def collect(self) -> Iterator[Metric]:
        yield from self._store()
        yield from self._writer()
        yield from self._spans()
        yield from self._span_ids()
        yield from self._runner()
        yield from self._budget()

    def _store(self) -> Iterator[Metric]:
        stats = self.stats
        if stats is None:
            return
        rollouts = GaugeMetricFamily("agl_rollouts", "Rollouts stored, by status", labels=["status"])
        for status, count in sorted(stats.rollouts_by_status.items()):
            rollouts.add_metric([status], count)
        yield rollouts
        yield GaugeMetricFamily(
            "agl_queue_depth", "Rollouts waiting to be dequeued (queuing + requeuing)", stats.queue_length
        )
        yield GaugeMetricFamily("agl_attempts_stored", "Attempts stored", stats.attempts)
        yield GaugeMetricFamily("agl_spans_stored", "Spans stored", stats.spans)
        yield GaugeMetricFamily("agl_resources_stored", "Resources versions stored", stats.resources)
        yield GaugeMetricFamily("agl_workers_known", "Workers the store has a record of", stats.workers)
        yield GaugeMetricFamily("agl_store_last_event_id", "Id of the latest rollout event", stats.last_event_id)
        yield GaugeMetricFamily(
            "agl_lmdb_data_bytes", "Bytes of the LMDB map in use (pages up to the last one written)", stats.data_bytes
        )
        yield GaugeMetricFamily(
            "agl_lmdb_map_size_bytes", "Current LMDB map size (it doubles when full)", stats.map_size_bytes
        )
        if stats.map_size_bytes:
            yield GaugeMetricFamily(
                "agl_lmdb_map_used_ratio", "Share of the LMDB map in use", stats.data_bytes / stats.map_size_bytes
            )
        path = getattr(self.ctx.store, "path", None)
        if path:
            try:
                size = os.stat(os.path.join(path, "data.mdb")).st_size
            except OSError:
                pass
            else:
                yield GaugeMetricFamily("agl_lmdb_file_bytes", "Size of the LMDB data file on disk", size)
        yield GaugeMetricFamily(
            "agl_server_start_time_seconds",
            "When the store was opened, in unix seconds",
            stats.start_time.ToNanoseconds() / 1e9,
        )

    def _writer(self) -> Iterator[Metric]:
        counts = getattr(self.ctx.store, "writer_counts", None)
        if counts is None:
            return
        groups, ops = counts
        yield CounterMetricFamily("agl_store_commit_groups", "Group commits of the store's writer", groups)
        yield CounterMetricFamily("agl_store_write_operations", "Write operations committed by the store's writer", ops)
        inline = getattr(self.ctx.store, "writer_inline_groups", None)
        if inline is not None:
            yield CounterMetricFamily(
                "agl_store_inline_commits",
                "Group commits run on the event loop: a lone stream's writes, the writer idle (AGL_INLINE_COMMITS)",
                inline,
            )
        reruns = getattr(self.ctx.store, "writer_reruns", None)
        if reruns is not None:
            yield CounterMetricFamily(
                "agl_store_group_reruns",
                "Groups the writer ran again, each operation in a nested transaction, because one operation failed",
                reruns,
            )

    def _spans(self) -> Iterator[Metric]:
        accepted = CounterMetricFamily("agl_spans_accepted", "Spans stored, by entry point", labels=["transport"])
        duplicate = CounterMetricFamily(
            "agl_spans_duplicate",
            "Spans acknowledged but already stored (resent), by entry point",
            labels=["transport"],
        )
        rejected = CounterMetricFamily(
            "agl_spans_rejected", "Spans refused, by entry point and reason", labels=["transport", "reason"]
        )
        for outcomes in self.ctx.span_outcomes:
            accepted.add_metric([outcomes.transport], outcomes.accepted)
            duplicate.add_metric([outcomes.transport], outcomes.duplicate)
            for reason, count in sorted(outcomes.rejected.items()):
                rejected.add_metric([outcomes.transport, reason], count)
        yield from (accepted, duplicate, rejected)
        yield InfoMetricFamily(
            "agl_span_edge_check",
            "How span batches are checked before they are stored: wire (the compiled walk first) or parse "
            "(AGL_EDGE_CHECK, or not built)",
            value={"check": span_checks.edge_check_in_use()},
        )

    def _span_ids(self) -> Iterator[Metric]:
        loop = getattr(self.ctx.store, "span_loop", None)
        if loop is not None:
            yield InfoMetricFamily(
                "agl_store_span_loop",
                "The store writer's span loop: compiled (the Cython extension) or python (AGL_SPAN_LOOP, or not built)",
                value={"loop": loop},
            )
        index = getattr(self.ctx.store, "span_id_index", None)
        if index is None:
            return
        yield GaugeMetricFamily("agl_span_id_filters", "Attempts whose span-id filter is in memory", index.filters)
        yield GaugeMetricFamily(
            "agl_span_id_filter_bytes", "Memory the span-id filters hold (growing ones included)", index.bytes_held
        )
        yield GaugeMetricFamily(
            "agl_span_id_filter_budget_bytes",
            "Memory allowed for span-id filters (--span-id-filter-mb)",
            index.budget_bytes,
        )
        yield CounterMetricFamily(
            "agl_span_id_filter_rebuilds",
            "Span-id filters read from an attempt's whole log at once: its first write since start-up, or since "
            "its filter was dropped to stay within the budget",
            index.rebuilds,
        )
        yield CounterMetricFamily(
            "agl_span_id_filter_grows",
            "Span-id filters outgrown by their attempt (a larger one is then filled a few log chunks per write)",
            index.grows,
        )
        yield CounterMetricFamily(
            "agl_span_id_exact_checks",
            "Span ids a filter could not rule out, looked up in the attempt's log (resends and false positives)",
            index.exact_checks,
        )

    def _runner(self) -> Iterator[Metric]:
        runner = self.ctx.runner
        if runner is None:
            return
        sessions: dict[str, Any] = runner.sessions
        yield GaugeMetricFamily("agl_work_streams_open", "Open RunnerService.Work streams", runner.open_streams)
        yield GaugeMetricFamily("agl_workers_connected", "Workers with a Work stream in session", len(sessions))
        yield GaugeMetricFamily(
            "agl_workers_capacity",
            "Attempts connected workers said they run at once, summed",
            sum(x.capacity for x in sessions.values()),
        )
        yield GaugeMetricFamily(
            "agl_workers_attempts_held",
            "Attempts connected workers hold, summed",
            sum(len(x.active) for x in sessions.values()),
        )
        writes = runner.worker_writes
        yield CounterMetricFamily(
            "agl_worker_record_updates",
            "Worker-record updates written for Work streams (welcomes, heartbeats, ends)",
            writes.items,
        )
        yield CounterMetricFamily(
            "agl_worker_record_writes",
            "Store operations those updates took (fewer when several streams' updates went together)",
            writes.writes,
        )
        beats = runner.attempt_heartbeats
        yield CounterMetricFamily(
            "agl_attempt_heartbeats",
            "Heartbeats of attempts written for Work streams (each worker heartbeat refreshes the attempts it holds)",
            beats.items,
        )
        yield CounterMetricFamily(
            "agl_attempt_heartbeat_writes",
            "Store operations those heartbeats took (fewer when several went together)",
            beats.writes,
        )

    def _budget(self) -> Iterator[Metric]:
        budget = self.ctx.ingest_budget
        if budget is None:
            return
        yield GaugeMetricFamily(
            "agl_ingest_budget_bytes", "Memory allowed for span batches read and not yet stored", budget.limit
        )
        yield GaugeMetricFamily(
            "agl_ingest_held_bytes", "Memory held by span batches read and not yet stored", budget.held
        )
        yield CounterMetricFamily(
            "agl_ingest_budget_waits", "Times an ingest stream waited for the budget", budget.waits
        )


def register_routes(app: web.Application, ctx: HttpContext) -> None:
    # No `_created` series: Prometheus does not use them and they double the histograms' text.
    disable_created_metrics()
    collector = ServerCollector(ctx)
    ctx.registry.register(collector)
    ProcessCollector(registry=ctx.registry)
    PlatformCollector(registry=ctx.registry)

    async def metrics(request: web.Request) -> web.Response:
        try:
            collector.stats = await ctx.store.get_stats(s.GetStatsRequest())
        except Exception as exc:  # the rest still says something; the gap shows as missing agl_rollouts
            logger.warning("metrics: the store's statistics could not be read: %s", exc)
            collector.stats = None
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(ctx.registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    app.router.add_get("/metrics", metrics)
