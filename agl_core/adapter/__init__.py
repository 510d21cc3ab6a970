"""Adapters turn spans into training data."""

from agl_core.adapter.base import Adapter, TraceAdapter

__all__ = ["Adapter", "TraceAdapter"]
