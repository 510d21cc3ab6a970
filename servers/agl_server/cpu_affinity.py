"""Put agl-server's Python threads on one CPU while it is busy (Linux; elsewhere nothing happens).

Why (measured, see :mod:`agl_server.tuning`): the threads that share the GIL hand it to each other
thousands of times a second, and a hand-over to a thread on another core costs a cross-core
wake-up. Pinning them together makes each a plain context switch; the GIL already lets only one
of them run Python at a time, so under load they lose no parallelism worth having.

Idle, pinning costs instead: a lone request's chain of hand-overs (event loop, writer, event loop)
runs one step after the other on the one core, and a pinned thread cannot move away from another
process busy on it (one rollout at a time reached a runner 0.15-0.4 ms later). So
:class:`LoadPinning` pins while the process uses at least half a core and lets the threads spread
again below a quarter of one.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable

BUSY_CORES = 0.5  # pin at or above this much CPU per second of wall time
IDLE_CORES = 0.25  # spread again at or below this
SAMPLE_SECONDS = 1.0


def allowed_cpus() -> set[int] | None:
    """The CPUs this process may run on, or None where the platform cannot say or set them."""
    getter = getattr(os, "sched_getaffinity", None)
    if getter is None or not hasattr(os, "sched_setaffinity"):
        return None
    return set(getter(0))


def describe(cpus: set[int]) -> str:
    return ", ".join(map(str, sorted(cpus)))


def current_cpu() -> int | None:
    """The CPU the calling thread last ran on (``/proc/thread-self/stat``, field 39), if known."""
    try:
        with open("/proc/thread-self/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[36])  # field 39 counted from 1; fields here start at field 3
    except (OSError, IndexError, ValueError):
        return None


def pin_python_threads(cpu: int) -> None:
    """Pin every running Python thread (and so the threads they start later) to ``cpu``."""
    for thread in threading.enumerate():
        if thread.native_id is not None and thread.is_alive():
            _set(thread.native_id, {cpu})


def spread_threads(cpu: int, cpus: set[int]) -> None:
    """Give every thread of this process pinned to ``cpu`` back ``cpus``: the Python threads, and
    any thread one of them started meanwhile (grpc starts some of its own from the caller's)."""
    for name in os.listdir("/proc/self/task"):
        tid = int(name)
        try:
            if os.sched_getaffinity(tid) == {cpu}:
                _set(tid, cpus)
        except ProcessLookupError:
            continue  # it ended meanwhile


def _set(tid: int, cpus: set[int]) -> None:
    try:
        os.sched_setaffinity(tid, cpus)
    except ProcessLookupError:
        pass  # it ended meanwhile


class LoadPinning:
    """Pins the Python threads to one CPU while the process is busy, and spreads them when idle.

    ``cpu``: the CPU to pin to; None picks the one the event loop is running on when it pins, so
    several servers on one machine stay where the kernel had placed them. ``on_change`` hears the
    CPU pinned to, or None when the threads are spread again."""

    def __init__(
        self,
        cpu: int | None = None,
        *,
        busy: float = BUSY_CORES,
        idle: float = IDLE_CORES,
        on_change: Callable[[int | None, float], None] | None = None,
    ) -> None:
        self.allowed = allowed_cpus()
        self.cpu = cpu
        self.busy = busy
        self.idle = idle
        self.pinned: int | None = None
        self._on_change = on_change

    @property
    def possible(self) -> bool:
        """Whether there is anything to choose: CPU affinity and at least two CPUs allowed."""
        return self.allowed is not None and len(self.allowed) >= 2

    def observe(self, cores: float) -> None:
        """The process used ``cores`` CPU-seconds per second over the last sample: pin or spread."""
        if not self.possible:
            return
        assert self.allowed is not None
        if self.pinned is None and cores >= self.busy:
            cpu = self.cpu
            if cpu is None:
                here = current_cpu()
                cpu = here if here in self.allowed else min(self.allowed)
            pin_python_threads(cpu)
            self.pinned = cpu
        elif self.pinned is not None and cores <= self.idle:
            spread_threads(self.pinned, self.allowed)
            self.pinned = None
        else:
            return
        if self._on_change is not None:
            self._on_change(self.pinned, cores)

    async def run(self, interval: float = SAMPLE_SECONDS) -> None:
        """Sample the process's CPU time every ``interval`` seconds, on the event loop, until cancelled."""
        if not self.possible:
            return
        cpu, wall = time.process_time(), time.monotonic()
        try:
            while True:
                await asyncio.sleep(interval)  # a sampling period, not a wait for anything
                now_cpu, now_wall = time.process_time(), time.monotonic()
                self.observe((now_cpu - cpu) / max(now_wall - wall, 1e-6))
                cpu, wall = now_cpu, now_wall
        finally:
            if self.pinned is not None and self.allowed is not None:
                spread_threads(self.pinned, self.allowed)
                self.pinned = None
