"""Keeps the pauses of CPython's cyclic garbage collector short on a busy agl-server.

A full (generation 2) collection stops the event loop while it walks every tracked object, and
agl-server holds many: what its imports made (grpc, protobuf, aiohttp, prometheus_client) and,
per Work stream, tasks, queues, events and call objects. With 1,000 streams open, full
collections of 60-145 ms were the whole tail of dispatch latency (p50 4 ms, p99 54 ms, max
149 ms in ``bench/fleet_bench.py --scenarios welcome``). Two standard remedies for long-running
CPython servers:

- ``gc.freeze()`` once the server has started: what start-up made lives as long as the process,
  so it leaves the collector's generations and no collection walks it again;
- larger thresholds, so collections of every generation come less often (objects are still freed
  by reference counting at once; only garbage in reference cycles waits longer).
"""

from __future__ import annotations

import gc
import os

# Allocations (net of frees) before a young collection, and the young / middle collections before
# the next older one. CPython's defaults are (700, 10, 10).
THRESHOLDS_ENV = "AGL_SERVER_GC_THRESHOLDS"
DEFAULT_THRESHOLDS = (50_000, 20, 40)


def thresholds() -> tuple[int, int, int]:
    """The thresholds to use: ``AGL_SERVER_GC_THRESHOLDS`` ("g0,g1,g2") or the defaults."""
    text = os.environ.get(THRESHOLDS_ENV, "").strip()
    if not text:
        return DEFAULT_THRESHOLDS
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise ValueError(
            f"{THRESHOLDS_ENV}={text!r}: give three positive integers 'g0,g1,g2' "
            f"(the defaults are {','.join(map(str, DEFAULT_THRESHOLDS))})"
        )
    return values  # type: ignore[return-value]


def settle_after_start(chosen: tuple[int, int, int]) -> None:
    """Call once the server is up: collect what start-up left, freeze the survivors, set thresholds."""
    g0, g1, g2 = chosen
    gc.collect()
    gc.freeze()
    gc.set_threshold(g0, g1, g2)
