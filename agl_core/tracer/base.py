"""The tracer interface: collect the spans of an attempt and deliver them to the store.

A runner calls ``init`` once per process, ``init_worker`` once per worker, then wraps every
attempt of its agent in ``trace_context(...)``; when that context exits, every span produced
inside it is in the store, acknowledged. Agents never call the tracer themselves: their LLM
calls, tool calls and emitted rewards become spans of the attempt that is being traced.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any

from agl_core.proto.trace_pb2 import Span


class Tracer(ABC):
    """Base class of tracers (built-in ones are plugins: see ``agl_tracers``)."""

    def init(self, **kwargs: Any) -> None:
        """Set up process-wide state (an OpenTelemetry tracer provider, instrumentation)."""

    def teardown(self) -> None:
        """Undo :meth:`init`."""

    def init_worker(self, worker_id: str, **kwargs: Any) -> None:
        """Set up per-worker state; called in the thread or process of the worker."""

    def teardown_worker(self, worker_id: str) -> None:
        """Undo :meth:`init_worker`."""

    @abstractmethod
    def trace_context(
        self,
        name: str | None = None,
        *,
        store: Any = None,
        rollout_id: str | None = None,
        attempt_id: str | None = None,
    ) -> AbstractAsyncContextManager[Any]:
        """An async context in which every span produced belongs to ``rollout_id``/``attempt_id``.

        With a ``store``, the spans stream to it while the context runs, and the context does not
        exit before all of them are acknowledged. Without one, they are only kept in memory for
        :meth:`get_last_trace`.
        """

    @abstractmethod
    def trace_context_sync(
        self,
        name: str | None = None,
        *,
        store: Any = None,
        rollout_id: str | None = None,
        attempt_id: str | None = None,
    ) -> AbstractContextManager[Any]:
        """:meth:`trace_context` for synchronous code."""

    @abstractmethod
    def get_last_trace(self) -> list[Span]:
        """The spans of the most recent trace context, in the order they ended."""


class NullTracer(Tracer):
    """Records nothing: for agents that report all their spans themselves."""

    def trace_context(self, name: str | None = None, **kwargs: Any) -> AbstractAsyncContextManager[Any]:
        return _null_async()

    def trace_context_sync(self, name: str | None = None, **kwargs: Any) -> AbstractContextManager[Any]:
        return _null_sync()

    def get_last_trace(self) -> list[Span]:
        return []


class _null_async(AbstractAsyncContextManager[None]):
    async def __aexit__(self, *exc: object) -> None:
        return None


class _null_sync(AbstractContextManager[None]):
    def __exit__(self, *exc: object) -> None:
        return None


__all__ = ["NullTracer", "Tracer"]
