#!/usr/bin/env python3
"""The span path's two steps timed on one thread: what the event loop does to hand a batch to the
store (``placeable_spans``) and the store writer's operation on it (``_ingest_op``), per 10-span
batch, each way the writer can be told where the spans go.

agl-server hands the writer each span's place (rollout, attempt, span id, sequence id, whether it
has a resource) read from the request's bytes in C (``validation.batch_span_places``); without that
(or where the extension is not built) the spans' headers are parsed by the protobuf runtime and
their ids checked from the bytes. Rounds of each way alternate on one store, in write transactions
of ``--group`` batches committed without sync, as the writer's groups are. There is no other thread,
so neither step waits for the GIL. Each round's figure is the median of its batches' wall times,
and the table gives each way's best round (the thread-CPU figures of ``ingest_cpu_bench.py`` count
in 10 ms ticks and include those waits).

    python bench/span_op_bench.py [--batches 500] [--rounds 20] [--group 4] [--out span_op_bench]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, run_and_save
from ingest_cpu_bench import SPANS_PER_BATCH, make_batches, running_attempts

from agl_core.store import LmdbStore, validation
from agl_core.store.lmdb import span_path
from agl_core.store.lmdb.records import Effects, Tx
from agl_core.store.lmdb.spans import placeable_spans

WAYS = {"places": "places read from the request's bytes", "parsed": "headers parsed, ids checked"}


@contextlib.contextmanager
def way(name: str) -> Iterator[None]:
    """Within it, ``placeable_spans`` goes the way named: ``parsed`` as where the places are not read."""
    if name == "places":
        yield
        return
    read = validation.batch_span_places
    validation.batch_span_places = lambda whole: None
    try:
        yield
    finally:
        validation.batch_span_places = read


def one_round(store: LmdbStore, batches: list[tuple[list[bytes], bytes]], group: int) -> tuple[float, float]:
    """Median microseconds per batch of (placeable_spans, the writer's operation) over ``batches``."""
    backend = store.backend
    hand, op = [], []
    for first in range(0, len(batches), group):
        with backend.env.begin(write=True) as txn:
            for raws, whole in batches[first : first + group]:
                started = time.perf_counter_ns()
                response, valid = placeable_spans(raws, whole)
                handed = time.perf_counter_ns()
                tx = Tx(txn, backend.dbs, Effects(), time.time_ns())
                accepted, _, _ = backend._ingest_op(tx, valid)
                tx.flush()
                done = time.perf_counter_ns()
                assert accepted == len(raws) and not response.rejected, (accepted, response)
                hand.append(handed - started)
                op.append(done - handed)
    return statistics.median(hand) / 1e3, statistics.median(op) / 1e3


async def measure(args: argparse.Namespace, workdir: str, report: Report) -> None:
    store = LmdbStore(os.path.join(workdir, "data"), sync=False)
    try:
        coords = await running_attempts(store)
        if validation.batch_span_places(make_batches(coords, 1)[0][1]) is None:
            raise SystemExit("the compiled wire walk (agl_core.store.wire_check) is not built here: nothing to compare")
        # The rounds run here, on the event loop's thread, with nothing else to do meanwhile: the
        # store's writer thread is idle (nothing is submitted to it), and the loop waits.
        one_round(store, make_batches(coords, min(200, args.batches)), args.group)  # filters and pages warm
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in WAYS}
        for _ in range(args.rounds):
            for name in WAYS:  # alternating, fresh span ids every round
                with way(name):
                    results[name].append(one_round(store, make_batches(coords, args.batches), args.group))
        # The best round of each way: a round the VM slowed down (another tenant, the host) only
        # ever adds time. The median round is in the note.
        for name, label in WAYS.items():
            hand = [r[0] for r in results[name]]
            op = [r[1] for r in results[name]]
            both = [a + b for a, b in zip(hand, op, strict=True)]
            note = f"median round {statistics.median(hand):.2f}; {label}, {SPANS_PER_BATCH} spans/batch"
            report.add(f"event loop's hand-over (placeable_spans), {name}", min(hand), "us", note=note)
            report.add(
                f"store writer's operation, {name}", min(op), "us", note=f"median round {statistics.median(op):.2f}"
            )
            report.add(f"  both, {name}", min(both), "us", note=f"median round {statistics.median(both):.2f}")
        report.context["rounds_us"] = {name: [[round(v, 2) for v in r] for r in rs] for name, rs in results.items()}
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=500, help="batches per round (default 500)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of each way, alternating (default 20)")
    parser.add_argument("--group", type=int, default=4, help="batches per write transaction (default 4)")
    parser.add_argument("--out", default="span_op_bench", help="result file name under bench/results")
    args = parser.parse_args()
    report = Report(
        "the span path's steps on one thread, per batch", context={**vars(args), "span_loop": span_path.choose()[0]}
    )

    return run_and_save(report, args.out, lambda workdir: measure(args, workdir, report), prefix="agl-span-op-")


if __name__ == "__main__":
    raise SystemExit(main())
