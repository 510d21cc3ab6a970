"""``agl rollouts spans ROLLOUT_ID``: the spans of a rollout as a tree, with timings.

The tree is :class:`agl_core.adapter.tree.TraceTree`'s: spans under their parents within each
attempt, orphans grouped under a stand-in for their missing parent (shown as ``(missing parent
SPAN_ID)``), siblings by start time. OFFSET is the time since the rollout's first span started.

With --json: ``{"rollout_id": ..., "spans": [span + {"depth", "synthetic"}, ...]}`` in tree order
(depth first), each span as in ``agl export`` (docs/cli.md); a stand-in has ``"synthetic": true``,
its ``span_id`` and ``attempt_id`` and nothing else.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from agl_core.cli import output
from agl_core.cli.connect import with_store
from agl_core.cli.rollouts import not_found
from agl_core.cli.span_json import span_to_dict
from agl_core.client import GrpcStore

if TYPE_CHECKING:
    from agl_core.adapter.tree import SpanNode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rollout_id", metavar="ROLLOUT_ID")
    parser.add_argument("--attempt", metavar="ATTEMPT_ID", help="one attempt's spans (an id or 'latest'); default all")
    parser.add_argument(
        "--no-repair", action="store_true", help="keep floating spans where tracing put them (no re-parenting by time)"
    )


def run(args: argparse.Namespace) -> int:
    async def body(store: GrpcStore) -> Any:
        if await store.get_rollout(args.rollout_id) is None:
            raise not_found(args.rollout_id)
        return await store.query_spans(args.rollout_id, args.attempt)

    # Imported here: the adapter package brings the OpenTelemetry SDK, which the other commands skip.
    from agl_core.adapter.tree import TraceTree

    spans = with_store(args, body)
    tree = TraceTree(spans, repair=not args.no_repair)
    nodes = [(node, _depth(node)) for node in tree.walk()]
    if args.json:
        output.print_json({"rollout_id": args.rollout_id, "spans": [_node_dict(n, d) for n, d in nodes]})
        return 0
    origin = min((n.start for n, _ in nodes if not n.synthetic), default=0)
    output.print_table(
        ["SPAN", "OFFSET", "DURATION", "ATTEMPT", "SPAN ID", "STATUS"],
        (_row(node, depth, origin) for node, depth in nodes),
    )
    output.console().print(f"{len(spans)} spans", style="dim")
    return 0


def _depth(node: SpanNode) -> int:
    return sum(1 for _ in node.ancestors()) - 1  # the virtual root does not count


def _row(node: SpanNode, depth: int, origin: int) -> list[Any]:
    name = f"(missing parent {node.span_id.hex()})" if node.synthetic else node.name
    status = ""
    if node.span is not None and node.span.status.code == 2:
        status = "error" + (f": {node.span.status.message}" if node.span.status.message else "")
    return [
        "  " * depth + name,
        output.seconds_text((node.start - origin) / 1e9) if origin else "",
        output.seconds_text((node.end - node.start) / 1e9),
        node.attempt_id,
        node.span_id.hex(),
        status,
    ]


def _node_dict(node: SpanNode, depth: int) -> dict[str, Any]:
    if node.span is None:
        return {"synthetic": True, "depth": depth, "span_id": node.span_id.hex(), "attempt_id": node.attempt_id}
    return {**span_to_dict(node.span), "synthetic": False, "depth": depth}
