"""Threads that run compiled code without the GIL.

agl-server pins its Python threads to one CPU while it is busy (``agl_server.cpu_affinity``):
they hand the GIL to each other thousands of times a second, and on one core each hand-over is a
plain context switch. A thread that never takes the GIL has no hand-over to save and only takes
that core's time from the others, so it is made a :class:`GilFreeThread` and left on every CPU.
"""

from __future__ import annotations

import threading


class GilFreeThread(threading.Thread):
    """A daemon thread whose target holds the GIL only to start and to return (``with nogil``)."""

    def __init__(self, target: object, name: str) -> None:
        super().__init__(target=target, name=name, daemon=True)  # type: ignore[arg-type]
