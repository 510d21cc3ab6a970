"""Tracers collect the spans of an agent's attempt and deliver them to the store."""

from agl_core.tracer.base import NullTracer, Tracer

__all__ = ["NullTracer", "Tracer"]
