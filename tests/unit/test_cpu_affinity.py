"""LoadPinning's thresholds, on this process's own threads: pinned at half a core of use, spread
again only at a quarter (in between nothing changes, so a load near one threshold does not flap)."""

from __future__ import annotations

import os
import threading

import pytest

from agl_server.cpu_affinity import LoadPinning, spread_threads

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="pinning needs Linux CPU affinity and at least two CPUs to choose from",
)


def test_pins_at_half_a_core_spreads_at_a_quarter_and_holds_in_between() -> None:
    allowed = os.sched_getaffinity(0)
    cpu = max(allowed)
    changes: list[int | None] = []
    pinning = LoadPinning(cpu, on_change=lambda pinned, cores: changes.append(pinned))
    started = threading.Event()
    release = threading.Event()
    # A thread started while pinned inherits the pin and is spread with the others.
    late = threading.Thread(target=lambda: (started.set(), release.wait(30)))
    try:
        pinning.observe(0.49)
        assert changes == [] and os.sched_getaffinity(0) == allowed
        pinning.observe(0.5)
        assert changes == [cpu] and os.sched_getaffinity(0) == {cpu}
        late.start()
        assert started.wait(30)
        assert late.native_id is not None and os.sched_getaffinity(late.native_id) == {cpu}
        pinning.observe(0.3)
        assert changes == [cpu] and os.sched_getaffinity(0) == {cpu}
        pinning.observe(0.25)
        assert changes == [cpu, None] and os.sched_getaffinity(0) == allowed
        assert os.sched_getaffinity(late.native_id) == allowed
        pinning.observe(0.4)
        assert changes == [cpu, None] and os.sched_getaffinity(0) == allowed
    finally:
        spread_threads(cpu, allowed)
        release.set()
        if late.is_alive():
            late.join(30)
