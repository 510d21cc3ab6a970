"""The event loop agl's async parts (store client, LLM proxy, rollout daemon) live on while the
synchronous verl trainer drives them.

- :class:`LoopThread`: a loop on a thread of its own, for a standalone run (``python -m
  agl_plugins.verl``) that opens its own store client;
- :class:`LoopHandle`: a loop that already runs elsewhere, for a run driven by agl's ``Trainer``: the
  store the Trainer gives the algorithm is bound to the Trainer's loop (a gRPC channel, or the
  embedded store of the ``shm`` strategy), so the daemon must run its coroutines there.

Either way the trainer hands coroutines over and waits (a gRPC channel binds to the loop it was
opened on).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class LoopRunner(Protocol):
    loop: asyncio.AbstractEventLoop

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T: ...

    def close(self) -> None: ...


class LoopHandle:
    """A loop running in another thread (the Trainer's); :meth:`close` leaves it running."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and return its result (its exception is raised here).

        Must not be called from the loop's own thread (it would wait on itself)."""
        if self.loop.is_closed():
            coroutine.close()
            raise RuntimeError("the event loop is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        """The loop belongs to whoever runs it."""


class LoopThread(LoopHandle):
    """A daemon thread running an asyncio loop until :meth:`close`."""

    def __init__(self, name: str = "agl-verl-loop") -> None:
        super().__init__(asyncio.new_event_loop())
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if not self._thread.is_alive():
            coroutine.close()
            raise RuntimeError("the loop thread is closed")
        return super().run(coroutine, timeout)

    def close(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
        self.loop.close()


__all__ = ["LoopHandle", "LoopRunner", "LoopThread"]
