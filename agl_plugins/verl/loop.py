"""An event loop on a thread of its own, for the synchronous verl trainer to drive agl's async parts.

The store client, the LLM proxy and the rollout daemon live on this loop for the whole run (a
gRPC channel binds to the loop it was opened on); the trainer hands it coroutines and waits.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """A daemon thread running an asyncio loop until :meth:`close`."""

    def __init__(self, name: str = "agl-verl-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and return its result (its exception is raised here)."""
        if not self._thread.is_alive():
            raise RuntimeError("the loop thread is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
        self.loop.close()


__all__ = ["LoopThread"]
