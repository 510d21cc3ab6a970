"""Adapters turn spans into training data."""

from agl_core.adapter.base import Adapter, TraceAdapter
from agl_core.adapter.messages import OpenAIMessages, TraceToMessages
from agl_core.adapter.tree import SpanNode, TraceTree
from agl_core.adapter.triplet import RewardMatchPolicy, Segment, TracerTraceToTriplet, Triplet

__all__ = [
    "Adapter",
    "OpenAIMessages",
    "RewardMatchPolicy",
    "Segment",
    "SpanNode",
    "TraceAdapter",
    "TraceToMessages",
    "TraceTree",
    "TracerTraceToTriplet",
    "Triplet",
]
