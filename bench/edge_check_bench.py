#!/usr/bin/env python3
"""What checking a span batch costs agl-server's event loop, per 10-span batch, each way it can.

Two checks run on the event loop for every batch before its write: that every span parses as
readers parse it (``span_checks.all_readable``: the protobuf runtime's parse of the whole request,
or first the compiled walk of its bytes, ``agl_core/store/wire_check.pyx``), and that every span's
ids can be placed (``validation.span_ids_well_formed`` over each span's header, or first the
compiled read of the ids from the request's bytes); and what the store's writer is handed to place
each span (the headers parsed, or read with the ids from the request's bytes by
``validation.batch_span_places``). Microseconds per batch, best of ``--rounds``,
in one process (no gRPC, no store): the batches of ``bench/store_bench.py`` (realistic LLM-call
spans with token-id arrays).

    python bench/edge_check_bench.py [--calls 5000] [--rounds 5] [--out edge_check_bench]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, llm_call_span, run_and_save

from agl_core.proto import store_pb2 as s
from agl_core.store import validation
from agl_core.store.wire import span_headers
from agl_server import span_checks

SPANS_PER_BATCH = 10


def per_call_us(calls: int, rounds: int, call: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return best


async def measure(calls: int, rounds: int, report: Report) -> None:
    request = s.IngestSpansRequest(
        batch_id=1, spans=[llm_call_span("ro-bench", "at-bench", i) for i in range(SPANS_PER_BATCH)]
    )
    whole = request.SerializeToString()
    raws = [span.SerializeToString() for span in request.spans]
    report.context.update(batch_bytes=len(whole), spans_per_batch=SPANS_PER_BATCH, calls=calls, rounds=rounds)
    headers = span_headers(raws, whole)
    assert headers is not None

    def python_ids() -> bool:
        return all(validation.span_ids_well_formed(header) for header in headers)

    def wire_ids() -> bool:
        return validation.batch_span_ids_well_formed(whole)

    for name, check in (("parse", "parse"), ("compiled walk first", "wire")):
        try:
            span_checks.use_edge_check(check)
        except ValueError as exc:  # the extension is not built here
            report.context[f"skipped: {check}"] = str(exc)
            continue
        assert span_checks.all_readable(raws, whole)
        report.add(
            f"spans readable: {name}",
            per_call_us(calls, rounds, lambda: span_checks.all_readable(raws, whole)),
            "us/batch",
        )
    span_checks.use_edge_check()
    assert python_ids()
    report.add("ids placeable: each span's header (Python)", per_call_us(calls, rounds, python_ids), "us/batch")
    if wire_ids():
        report.add(
            "ids placeable: read from the batch's bytes (compiled)", per_call_us(calls, rounds, wire_ids), "us/batch"
        )
    else:
        report.context["skipped: compiled ids"] = "agl_core.store.wire_check is not built here"
        return
    # What the store's writer reads of each span to place it, handed over with the batch: the
    # headers parsed and their ids checked, or both read from the batch's bytes at once.
    places = validation.batch_span_places(whole)
    assert places is not None and [p.span_id for p in places] == [h.span_id for h in headers]
    report.add(
        "places: headers parsed, ids read from the bytes",
        per_call_us(calls, rounds, lambda: span_headers(raws, whole) is not None and wire_ids()),
        "us/batch",
    )
    report.add(
        "places: read from the batch's bytes (compiled)",
        per_call_us(calls, rounds, lambda: validation.batch_span_places(whole)),
        "us/batch",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per figure (the best is kept)")
    parser.add_argument("--out", default="edge_check_bench", help="result file name under bench/results")
    args = parser.parse_args()
    report = Report("span batch checks on agl-server's event loop")
    return run_and_save(report, args.out, lambda _: measure(args.calls, args.rounds, report))


if __name__ == "__main__":
    raise SystemExit(main())
