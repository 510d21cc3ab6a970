"""The metrics agl-server counts as things happen (the rest are read at scrape time, see
:mod:`agl_server.http.metrics`).

Only what no store counter already holds is counted here, and cheaply: a histogram observation
per ingest batch and per commit group (not per span), and a look at the events of each commit
(status changes only; a commit of spans has none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from agl_core.proto import types_pb2 as t

# Spans per IngestSpans batch: clients batch from one span to a few thousand.
BATCH_BUCKETS = (1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096, 16384)
# Commit and ack latency: a nosync commit takes tens of microseconds, an fsync milliseconds, a
# loaded server with a full ingest budget seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

_ACTIVE_ROLLOUT = frozenset({t.ROLLOUT_STATUS_PREPARING, t.ROLLOUT_STATUS_RUNNING})
_RETRY_OR_FAIL = frozenset({t.ROLLOUT_STATUS_REQUEUING, t.ROLLOUT_STATUS_FAILED})


class ServerMetrics:
    """The hot-path metrics of one agl-server, in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ingest_batch_spans = Histogram(
            "agl_ingest_batch_spans",
            "Spans per IngestSpans batch received over gRPC",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.ingest_ack_seconds = Histogram(
            "agl_ingest_ack_seconds",
            "Time from reading an IngestSpans batch to its ack being ready (checked, written, durable)",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "agl_store_commit_seconds",
            "Time the store's writer took to run and commit one group of writes (fsync included)",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.commit_flush_seconds = Histogram(
            "agl_store_commit_flush_seconds",
            "Of agl_store_commit_seconds, the time the commit itself took (writing the group's pages and, "
            "when durable, syncing them to disk); the rest ran the group's operations",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.commit_group_ops = Histogram(
            "agl_store_commit_group_operations",
            "Write operations committed together in one group commit",
            buckets=GROUP_BUCKETS,
            registry=registry,
        )
        self.attempts_started = Counter(
            "agl_attempts_started", "Attempts created (by a dequeue or StartRollout/StartAttempt)", registry=registry
        )
        self.attempts_retried = Counter(
            "agl_attempts_retried",
            "Attempts that ended with their rollout back in the queue (REQUEUING)",
            registry=registry,
        )
        self.attempts_timed_out = Counter(
            "agl_attempts_timed_out", "Latest attempts that ended with TIMEOUT", registry=registry
        )
        self.attempts_unresponsive = Counter(
            "agl_attempts_unresponsive",
            "Latest attempts marked UNRESPONSIVE (no heartbeat in time, or their worker's stream broke)",
            registry=registry,
        )
        self.python_cpu = Gauge(
            "agl_server_python_cpu",
            "The CPU the server's Python threads are pinned to while it is busy; -1 while they may run on any",
            registry=registry,
        )
        self.python_cpu.set(-1)
        self.rollouts_ended = Counter(
            "agl_rollouts_ended", "Rollouts that reached a terminal status", ["status"], registry=registry
        )
        self._ended = {
            status: self.rollouts_ended.labels(name)
            for status, name in (
                (t.ROLLOUT_STATUS_SUCCEEDED, "succeeded"),
                (t.ROLLOUT_STATUS_FAILED, "failed"),
                (t.ROLLOUT_STATUS_CANCELLED, "cancelled"),
            )
        }

    def python_cpu_pinned(self, cpu: int | None) -> None:
        """Hears agl_server.cpu_affinity.LoadPinning pin the Python threads (or spread them: None)."""
        self.python_cpu.set(-1 if cpu is None else cpu)

    def observe_commit(self, operations: int, seconds: float, flush_seconds: float) -> None:
        """A commit observer of the store's writer (runs on the writer thread, or the event loop for an inline
        commit; histograms are thread-safe)."""
        self.commit_seconds.observe(seconds)
        self.commit_flush_seconds.observe(flush_seconds)
        self.commit_group_ops.observe(operations)

    def on_commit(self, effects: Sequence[Any]) -> None:
        """A store listener: counts attempt outcomes from the status changes of one commit."""
        for effect in effects:
            # Counted where attempts are made: one claimed RUNNING (start_on_assignment) takes its
            # rollout straight to RUNNING, so no PREPARING event tells of it.
            if effect.attempts_started:
                self.attempts_started.inc(effect.attempts_started)
            for event in effect.events:
                self._count(event)

    def _count(self, event: t.RolloutEvent) -> None:
        new, old = event.new_status, event.old_status
        if new == t.ROLLOUT_STATUS_REQUEUING:
            self.attempts_retried.inc()
        if new in _RETRY_OR_FAIL and old in _ACTIVE_ROLLOUT:
            status = event.rollout.attempt.status
            if status == t.ATTEMPT_STATUS_TIMEOUT:
                self.attempts_timed_out.inc()
            elif status == t.ATTEMPT_STATUS_UNRESPONSIVE:
                self.attempts_unresponsive.inc()
        ended = self._ended.get(new)
        if ended is not None:
            ended.inc()
