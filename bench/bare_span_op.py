"""The least a span operation can do in agl's store writer, for the floors ``agl-bare-op`` and
``agl-native-edge-bare``: what a native span operation that cost no CPU at all would leave.

Why: the plan for issue 16's durable ack targets after the native edge floor was a native span
operation (docs/span-acks.md): agl's placement, span-id filter, sequence ids, chunks and heartbeats done
in the writer at a fraction of their CPU. Before building it, this bounds what it can buy. With
:func:`install`, the writer's span operation puts each span's bytes under a key of its own in the
``spans`` database (as many puts as agl's operation makes for these spans, none of its reads,
checks, logs, counters or heartbeats) and accepts every span. Everything else is agl's: the edge,
the ids' check, the writer's groups and commits, the delivery of the answers. A real native span
operation does more (its reads, the span-id logs, the attempts' heartbeats: more pages per commit
too), so it cannot do better than this.

The keys start with eight 0xFF bytes, after every rollout number agl gives, so they never meet agl's
own keys and the store's span count (entries of ``spans``) counts them.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

# Far above any rollout number: agl's span keys start with the rollout's number, big-endian.
PREFIX = b"\xff" * 8


def install() -> None:
    """Replace the writer's span operation of every :class:`LmdbStore` made from now on, in this
    process, with the bare one."""
    from agl_core.store.lmdb.spans import SpansMixin

    # Unique across restarts of the floor on one data directory: the clock at install, then a count.
    numbers = itertools.count(time.time_ns())

    def bare_ingest_op(self: Any, tx: Any, spans: list[tuple[int, Any, bytes]]) -> tuple[int, list[int], list[Any]]:
        put, db = tx.txn.put, tx.dbs.spans
        for _, _, raw in spans:
            put(PREFIX + next(numbers).to_bytes(8, "big"), raw, db=db)
        return len(spans), [], []

    SpansMixin._ingest_op = bare_ingest_op  # type: ignore[method-assign]
