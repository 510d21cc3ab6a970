"""Interpreter settings that keep agl-server's latency tails short: the garbage collector and the GIL.

**Garbage collector.** A full (generation 2) collection stops the event loop while it walks every
tracked object, and agl-server holds many: what its imports made (grpc, protobuf, aiohttp,
prometheus_client) and, per Work stream, tasks, queues, events and call objects. With 1,000
streams open, full collections of 60-145 ms were the whole tail of dispatch latency (p50 4 ms,
p99 54 ms, max 149 ms in ``bench/fleet_bench.py --scenarios welcome``). Once the server has
started, ``gc.freeze()`` takes what start-up made out of every later collection (it lives as long
as the process), and larger thresholds make collections of every generation rarer (objects are
still freed at once by reference counting; only garbage in reference cycles waits longer).

**GIL switch interval.** The store's writer thread commits with the GIL released and then needs
it back to finish the group and hand the results to the event loop. CPython makes a thread that
holds the GIL give it up to a waiting one only every switch interval, 5 ms by default, so while
the loop is busy a finished commit could wait up to 5 ms before its callers heard of it. At
0.5 ms, the ack p99 of 8 closed-loop span writers fell from 10-17 ms to 5-7 ms (interleaved runs
of ``bench/store_bench.py``'s ack latency on this 2-core machine), one writer unchanged.

**One CPU for the Python threads, under load.** The event loop, grpc's poller and the store's
writer take turns holding the GIL, and the writer gives it up around every LMDB call. When the
kernel runs them on different cores, each hand-over wakes a thread on another core: with 8
closed-loop span writers the writer's operations took 2.2x their CPU time in wall time, most of it
waiting for the GIL. On one core the hand-over is a plain context switch: wall time equal to CPU
time, 26% more span batches per second at a lower ack p99, and 17-35% more rollouts per second in
the fleet scenarios (docs/server.md, "Many workers"). Idle, one core is slower by a fraction of a
millisecond per request, so the threads are pinned only while the server uses half a core or more
(:mod:`agl_server.cpu_affinity`). Only Python threads are pinned (those running then, and the ones
they start meanwhile inherit it); grpc's own C++ threads, which never need the GIL, keep every CPU.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agl_server import cpu_affinity

logger = logging.getLogger("agl_server")

GC_THRESHOLDS_ENV = "AGL_SERVER_GC_THRESHOLDS"
# Allocations (net of frees) before a young collection, and young / middle collections before the
# next older one. CPython's defaults are (700, 10, 10).
DEFAULT_GC_THRESHOLDS = (50_000, 20, 40)
SWITCH_INTERVAL_ENV = "AGL_SERVER_SWITCH_INTERVAL_MS"
DEFAULT_SWITCH_INTERVAL_MS = 0.5
PYTHON_CPU_ENV = "AGL_SERVER_PYTHON_CPU"


@dataclass(frozen=True)
class Tuning:
    gc_thresholds: tuple[int, int, int] = DEFAULT_GC_THRESHOLDS
    switch_interval_ms: float = DEFAULT_SWITCH_INTERVAL_MS
    # While busy, "auto": pin to the CPU the event loop runs on then; a number: to that CPU; "off": never.
    python_cpu: int | str = "auto"

    @classmethod
    def from_env(cls) -> Tuning:
        """The settings, with ``AGL_SERVER_GC_THRESHOLDS`` ("g0,g1,g2"),
        ``AGL_SERVER_SWITCH_INTERVAL_MS`` and ``AGL_SERVER_PYTHON_CPU`` ("auto", "off" or a CPU
        number) overriding the defaults; ValueError names a bad one."""
        return cls(
            _gc_thresholds(os.environ.get(GC_THRESHOLDS_ENV, "")),
            _switch_interval(os.environ),
            _python_cpu(os.environ),
        )

    def apply_after_start(self) -> None:
        """Call once the server is up: collect what start-up left, freeze the survivors, set the
        thresholds and the switch interval."""
        gc.collect()
        gc.freeze()
        gc.set_threshold(*self.gc_thresholds)
        sys.setswitchinterval(self.switch_interval_ms / 1000)

    def start_pinning(self, on_pinned: Callable[[int | None], None] | None = None) -> asyncio.Task[None] | None:
        """Start pinning the Python threads to one CPU while the server is busy (on the running
        loop; cancel the task to stop, which spreads them again). None when turned off or when
        there is no choice of CPU. ``on_pinned`` hears the CPU, or None when spread again."""
        if self.python_cpu == "off":
            return None

        def changed(cpu: int | None, cores: float) -> None:
            if cpu is None:
                logger.info("Python threads spread over every CPU again (the server used %.2f cores)", cores)
            else:
                logger.info(
                    "busy (%.2f cores): Python threads run on CPU %d (%s=off leaves them spread)",
                    cores,
                    cpu,
                    PYTHON_CPU_ENV,
                    extra={"python_cpu": cpu},
                )
            if on_pinned is not None:
                on_pinned(cpu)

        chosen = None if self.python_cpu == "auto" else int(self.python_cpu)
        pinning = cpu_affinity.LoadPinning(chosen, on_change=changed)
        if not pinning.possible:
            return None
        return asyncio.ensure_future(pinning.run())


def _gc_thresholds(text: str) -> tuple[int, int, int]:
    text = text.strip()
    if not text:
        return DEFAULT_GC_THRESHOLDS
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise ValueError(
            f"{GC_THRESHOLDS_ENV}={text!r}: give three positive integers 'g0,g1,g2' "
            f"(the defaults are {','.join(map(str, DEFAULT_GC_THRESHOLDS))})"
        )
    return values  # type: ignore[return-value]


def _switch_interval(env: Mapping[str, str]) -> float:
    text = env.get(SWITCH_INTERVAL_ENV, "").strip()
    if not text:
        return DEFAULT_SWITCH_INTERVAL_MS
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.01 <= value <= 100:  # NaN fails too
        raise ValueError(
            f"{SWITCH_INTERVAL_ENV}={text!r}: give milliseconds between 0.01 and 100 "
            f"(the default is {DEFAULT_SWITCH_INTERVAL_MS:g}; CPython's own is 5)"
        )
    return value


def _python_cpu(env: Mapping[str, str]) -> int | str:
    text = env.get(PYTHON_CPU_ENV, "").strip()
    if text.lower() in ("", "auto"):
        return "auto"
    if text.lower() == "off":
        return "off"
    allowed = cpu_affinity.allowed_cpus()
    if text.isdigit() and (allowed is None or int(text) in allowed):
        return int(text)
    choices = f"one of {cpu_affinity.describe(allowed)}" if allowed is not None else "a CPU number"
    raise ValueError(f"{PYTHON_CPU_ENV}={text!r}: give 'auto', 'off' or {choices} (the CPUs this process may use)")
