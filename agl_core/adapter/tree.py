"""The spans of a rollout as a tree, with the hierarchy repaired where tracing lost it.

Spans link to their parents by id, but real traces are untidy: a parent may never arrive (its
process died, it was sampled out), a framework may start spans without the current context so
they float at the top, and spans from different processes carry clocks that disagree. The
tree therefore:

- links spans to their parents within one attempt (span ids are unique per attempt);
- groups orphans whose parent is missing under a stand-in node for that parent, so siblings
  stay together (stand-ins are ``synthetic``);
- with ``repair=True``, moves a floating subtree (a second root, or a child of the attempt's root)
  under the tightest span that encloses it in time and is an agent span or a stand-in, allowing
  ``clock_skew_ns`` of disagreement;
- orders siblings by start time, then by the store's sequence id.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agl_core import semconv
from agl_core.proto.trace_pb2 import Span
from agl_core.types.values import from_any_value

# Attributes that name the agent a span belongs to, most specific first.
AGENT_NAME_ATTRIBUTES = (semconv.AGENT_NAME, semconv.GEN_AI_AGENT_NAME, "agent.name")


@dataclass(eq=False)
class SpanNode:
    """One span in the tree (or a stand-in for a missing parent, or the tree's virtual root)."""

    span: Span | None
    attempt_id: str
    span_id: bytes
    start: int
    end: int
    sequence_id: int = 0
    parent: SpanNode | None = None
    children: list[SpanNode] = field(default_factory=list)
    _attributes: dict[str, Any] | None = None

    @property
    def synthetic(self) -> bool:
        return self.span is None

    @property
    def name(self) -> str:
        return self.span.name if self.span is not None else ""

    @property
    def attributes(self) -> dict[str, Any]:
        """The span's attributes as a dict (converted once, on first use)."""
        if self._attributes is None:
            self._attributes = (
                {kv.key: from_any_value(kv.value) for kv in self.span.attributes} if self.span is not None else {}
            )
        return self._attributes

    def agent_name(self) -> str | None:
        """The agent this span stands for, if it is an agent span."""
        attributes = self.attributes
        for key in AGENT_NAME_ATTRIBUTES:
            value = attributes.get(key)
            if isinstance(value, str) and value:
                return value
        if attributes.get(semconv.OPERATION) == semconv.OPERATION_AGENT:
            return self.name
        return None

    def order(self) -> tuple[int, int]:
        return self.start, self.sequence_id

    def walk(self) -> Iterator[SpanNode]:
        """This node and its descendants, depth first, children in order."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def ancestors(self) -> Iterator[SpanNode]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def encloses(self, other: SpanNode, skew: int) -> bool:
        return self.start - skew <= other.start and other.end <= self.end + skew

    def _attach(self, child: SpanNode) -> None:
        if child.parent is not None:
            child.parent.children.remove(child)
        child.parent = self
        self.children.append(child)


class TraceTree:
    """A forest of spans under one virtual root (one subtree per attempt root).

    :param spans: spans of one attempt or of a whole rollout (several attempts).
    :param repair: re-parent floating subtrees by time (see the module docstring).
    :param clock_skew_ns: how far clocks of different processes may disagree.
    """

    def __init__(self, spans: Sequence[Span], *, repair: bool = True, clock_skew_ns: int = 1_000_000) -> None:
        self.clock_skew_ns = clock_skew_ns
        self.root = SpanNode(None, "", b"", 0, 0)
        self.nodes: dict[tuple[str, bytes], SpanNode] = {}
        for span in spans:
            key = (span.attempt_id, span.span_id)
            if key in self.nodes:  # the same span delivered twice
                continue
            self.nodes[key] = SpanNode(
                span,
                span.attempt_id,
                span.span_id,
                span.start_time_unix_nano,
                max(span.end_time_unix_nano, span.start_time_unix_nano),
                span.sequence_id,
            )
        self._link()
        if repair:
            self._repair()
        self._sort()

    def _link(self) -> None:
        standins: dict[tuple[str, bytes], SpanNode] = {}
        for node in list(self.nodes.values()):
            assert node.span is not None
            parent_id = node.span.parent_span_id
            if not parent_id:
                self.root._attach(node)
                continue
            parent = self.nodes.get((node.attempt_id, parent_id))
            if parent is None:
                parent = standins.get((node.attempt_id, parent_id))
                if parent is None:
                    parent = standins[(node.attempt_id, parent_id)] = SpanNode(
                        None, node.attempt_id, parent_id, node.start, node.end, node.sequence_id
                    )
                    self.root._attach(parent)
                parent.start = min(parent.start, node.start)
                parent.end = max(parent.end, node.end)
                parent.sequence_id = min(parent.sequence_id, node.sequence_id)
            parent._attach(node)
        self._check_cycles()

    def _check_cycles(self) -> None:
        """Spans whose parent chain loops (malformed input) are lifted to the top."""
        reachable = {id(node) for node in self.root.walk()}
        for node in self.nodes.values():
            if id(node) not in reachable:
                self.root._attach(node)
                reachable.update(id(n) for n in node.walk())

    def _repair(self) -> None:
        skew = self.clock_skew_ns
        for attempt_root in self._attempt_roots():
            attempt = attempt_root.attempt_id
            hosts = [n for n in attempt_root.walk() if n is not attempt_root and (n.synthetic or n.agent_name())]
            floating = [n for n in self.root.children if n.attempt_id == attempt and n is not attempt_root]
            floating += [c for c in attempt_root.children if not c.synthetic and c.agent_name() is None]
            for node in sorted(floating, key=lambda n: n.end - n.start):
                host = self._tightest_host(attempt_root, hosts, node, skew)
                if host is not None and host is not node.parent:
                    host._attach(node)

    def _attempt_roots(self) -> list[SpanNode]:
        """Per attempt, its longest top-level span (the runner's rollout span when there is one)."""
        best: dict[str, SpanNode] = {}
        for node in self.root.children:
            current = best.get(node.attempt_id)
            if current is None or (node.end - node.start, -node.start) > (
                current.end - current.start,
                -current.start,
            ):
                best[node.attempt_id] = node
        return list(best.values())

    @staticmethod
    def _tightest_host(attempt_root: SpanNode, hosts: list[SpanNode], node: SpanNode, skew: int) -> SpanNode | None:
        best: SpanNode | None = None
        for candidate in hosts:
            if candidate is node or not candidate.encloses(node, skew):
                continue
            if best is not None and candidate.end - candidate.start >= best.end - best.start:
                continue
            if any(ancestor is node for ancestor in candidate.ancestors()):
                continue  # inside the subtree being moved
            best = candidate
        if best is None and node.parent is not attempt_root and attempt_root.encloses(node, skew):
            return attempt_root
        return best

    def _sort(self) -> None:
        for node in self.root.walk():
            node.children.sort(key=SpanNode.order)

    def walk(self) -> Iterator[SpanNode]:
        """Every node but the virtual root, depth first."""
        nodes = self.root.walk()
        next(nodes)
        return nodes

    def spans_in_time_order(self) -> list[SpanNode]:
        """Every real span, by start time (then sequence id)."""
        return sorted((n for n in self.walk() if not n.synthetic), key=SpanNode.order)


__all__ = ["AGENT_NAME_ATTRIBUTES", "SpanNode", "TraceTree"]
