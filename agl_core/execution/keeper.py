"""Starting Ray from a thread that outlives the caller (shared by the ray strategy and the verl plugin).

A local Ray cluster's GCS and raylet are started with ``PR_SET_PDEATHSIG(SIGKILL)``, which Linux
ties to the *thread* that forked them, not the process. Started from a thread that ends before the
run does (an event loop's, a Trainer's), Ray dies under the workers; an error in a step then never
prints either, because the driver aborts on "GCS unavailable" inside Ray's excepthook first. So
``ray.init`` runs on a daemon thread that parks until released (or for good), and Ray goes with it.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any


def init_in_keeper_thread(
    start: Callable[[], Any], release: threading.Event | None = None, name: str = "agl-ray"
) -> None:
    """Call ``start`` (``ray.init``) in a daemon thread that lives until ``release`` is set (None:
    as long as the process); raise what ``start`` raised."""
    started: concurrent.futures.Future[None] = concurrent.futures.Future()
    park = release if release is not None else threading.Event()

    def keep() -> None:
        try:
            start()
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(None)
        park.wait()

    threading.Thread(target=keep, name=name, daemon=True).start()
    started.result()
