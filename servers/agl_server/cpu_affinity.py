"""Put agl-server's Python threads on one CPU (Linux; elsewhere nothing happens).

Why (measured, see :mod:`agl_server.tuning`): the threads that share the GIL hand it to each other
thousands of times a second, and a hand-over to a thread on another core costs a cross-core
wake-up. Pinning them together makes each a plain context switch; the GIL already lets only one
of them run Python at a time, so they lose no parallelism worth having.
"""

from __future__ import annotations

import os
import threading


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


def pin_python_threads(cpu: int | None = None) -> int | None:
    """Pin every running Python thread (and so the threads they start later) to ``cpu``, by
    default the one the calling thread runs on now. Returns the CPU, or None when there was
    nothing to do: a single allowed CPU, or a platform without affinity."""
    allowed = allowed_cpus()
    if allowed is None or len(allowed) < 2:
        return None
    if cpu is None:
        here = current_cpu()
        cpu = here if here in allowed else min(allowed)
    for thread in threading.enumerate():
        native_id = thread.native_id
        if native_id is None or not thread.is_alive():
            continue
        try:
            os.sched_setaffinity(native_id, {cpu})
        except ProcessLookupError:
            continue  # it ended meanwhile
    return cpu
