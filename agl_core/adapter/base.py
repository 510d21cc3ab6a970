"""The adapter interface: turn what the store holds (spans) into what an algorithm trains on."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Generic, TypeVar

from agl_core.proto.trace_pb2 import Span

T_from = TypeVar("T_from")
T_to = TypeVar("T_to")


class Adapter(ABC, Generic[T_from, T_to]):
    """Base class of adapters (built-in ones are plugins: see ``agl_adapters``)."""

    @abstractmethod
    def adapt(self, source: T_from) -> T_to:
        """Convert ``source``; must not mutate it."""

    def __call__(self, source: T_from) -> T_to:
        return self.adapt(source)


class TraceAdapter(Adapter[Sequence[Span], T_to], Generic[T_to]):
    """An adapter from the spans of one attempt (or rollout) to training data."""


__all__ = ["Adapter", "TraceAdapter"]
