"""Where the store's single writer spends its time, read from agl-server's /metrics.

The writer runs every write of the server in group commits, one group at a time. Two scrapes of
``agl_store_commit_seconds`` (a whole group: its operations, then the commit) and
``agl_store_commit_flush_seconds`` (the commit alone: pages written and synced) around a workload
tell how busy it was and what each group cost. A writer busy close to 100% of the time is the
bound on every acknowledgement."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

_WANTED = {
    "agl_store_commit_seconds_sum": "seconds",
    "agl_store_commit_seconds_count": "groups",
    "agl_store_commit_flush_seconds_sum": "flush_seconds",
    "agl_store_commit_group_operations_sum": "operations",
}


@dataclass(frozen=True)
class WriterTotals:
    seconds: float = 0.0
    groups: float = 0.0
    flush_seconds: float = 0.0
    operations: float = 0.0


def scrape(metrics_url: str) -> dict[str, float]:
    """Every sample of ``metrics_url`` (``http://host:port/metrics``) now, by name (labels left out:
    the family's last sample), and those with labels also as ``name{label=value,...}``."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        families = text_string_to_metric_families(response.read().decode())
        samples: dict[str, float] = {}
        for family in families:
            for sample in family.samples:
                samples[sample.name] = sample.value
                if sample.labels:
                    labels = ",".join(f"{key}={value}" for key, value in sorted(sample.labels.items()))
                    samples[f"{sample.name}{{{labels}}}"] = sample.value
        return samples


def writer_totals(metrics_url: str, samples: dict[str, float] | None = None) -> WriterTotals:
    """The writer's running totals now, scraped from ``metrics_url``, or read from ``samples`` (a
    :func:`scrape` of it) when given."""
    if samples is None:
        samples = scrape(metrics_url)
    return WriterTotals(**{field: samples[name] for name, field in _WANTED.items() if name in samples})


@dataclass(frozen=True)
class WriterShare:
    """The writer over one interval of ``wall`` seconds."""

    busy: float  # fraction of the interval spent running groups
    operations_per_group: float
    run_ms_per_group: float  # running the operations, waits for the GIL included
    commit_ms_per_group: float  # writing and syncing the pages

    @classmethod
    def between(cls, before: WriterTotals, after: WriterTotals, wall: float) -> WriterShare:
        groups = max(after.groups - before.groups, 1.0)
        seconds = after.seconds - before.seconds
        flush = after.flush_seconds - before.flush_seconds
        return cls(
            busy=seconds / wall if wall > 0 else 0.0,
            operations_per_group=(after.operations - before.operations) / groups,
            run_ms_per_group=(seconds - flush) / groups * 1e3,
            commit_ms_per_group=flush / groups * 1e3,
        )
