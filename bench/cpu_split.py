"""``--split-cpus``: the servers on CPU 0, the bench and its load generators on the other CPUs.

On a 2-core machine the Go writers of the ack benchmarks take a large share of the CPU the server
needs (their own rows say how much), so a latency measured with both on every CPU mixes the
server's cost with the client's. Split, each side has CPUs of its own, as it would with the clients
on other machines. Linux only (sched_setaffinity); a child inherits the CPUs of the thread that
starts it, so servers are started inside :func:`spawning_on`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

SERVER_CPUS = frozenset({0})


def split(report_context: dict[str, object]) -> frozenset[int]:
    """Move this thread (and the children it starts from now on) off CPU 0; the servers' CPUs."""
    if not hasattr(os, "sched_setaffinity"):
        raise SystemExit("--split-cpus needs Linux (sched_setaffinity)")
    allowed = os.sched_getaffinity(0)
    clients = set(allowed) - SERVER_CPUS
    if not clients or not SERVER_CPUS <= allowed:
        raise SystemExit(f"--split-cpus needs CPU 0 and at least one other; this process may use {sorted(allowed)}")
    os.sched_setaffinity(0, clients)
    report_context["cpus"] = f"servers on {sorted(SERVER_CPUS)}, the bench and its load generators on {sorted(clients)}"
    return SERVER_CPUS


@contextmanager
def spawning_on(cpus: frozenset[int] | None) -> Iterator[None]:
    """Processes started in this block run on ``cpus`` (None: wherever this thread runs)."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
