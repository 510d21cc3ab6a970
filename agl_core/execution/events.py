"""Stop signals that cross threads and processes, awaited on an event loop.

Between processes the signal is a pipe, not a ``multiprocessing.Event``: an Event's condition
variable is left broken when a waiting process is SIGKILLed (setting it then blocks forever),
while a pipe simply reads as closed. Closing the write end stops every reader, and a runner
whose parent dies sees the pipe close and stops too.
"""

from __future__ import annotations

import asyncio
import threading
from multiprocessing.connection import Connection
from typing import Protocol


class WaitableEvent(Protocol):
    def wait(self, timeout: float | None = None) -> bool: ...
    def is_set(self) -> bool: ...


StopSignal = WaitableEvent | Connection


def bridge(signal: StopSignal, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Event:
    """An asyncio.Event on ``loop`` that gets set when ``signal`` fires: a ``threading.Event`` is
    set, or the write end of a pipe (a ``multiprocessing`` Connection) is written to or closed."""
    loop = loop or asyncio.get_running_loop()
    mirrored = asyncio.Event()
    if isinstance(signal, Connection):
        fd = signal.fileno()

        def readable() -> None:
            loop.remove_reader(fd)
            mirrored.set()

        loop.add_reader(fd, readable)
        return mirrored

    def wait() -> None:
        signal.wait()
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(mirrored.set)
            except RuntimeError:  # the loop closed meanwhile
                pass

    if signal.is_set():
        mirrored.set()
    else:
        threading.Thread(target=wait, name="agl-stop-bridge", daemon=True).start()
    return mirrored
