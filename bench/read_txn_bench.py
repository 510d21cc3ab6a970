#!/usr/bin/env python3
"""Read-path cost of the embedded store: every read runs in a short LMDB read transaction.

Times, in one process on a fresh LmdbStore, calls that each open one or more read transactions:
GetRollout, GetResources of a namespace without resources (a read that fails inside its
transaction), and QuerySpans of a 10-span rollout; microseconds per call (best of --rounds, so
another job on the machine costs less). It also reports the reader slots the process holds at the
end (a read whose transaction object outlives it keeps one: agl_core/store/lmdb/reads.py).

    python bench/read_txn_bench.py [--calls 20000] [--rounds 3] [--out read_txn_bench]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, run_and_save

from agl_core.errors import NotFoundError
from agl_core.proto import store_pb2 as s
from agl_core.store import LmdbStore
from agl_core.types import new_span


async def per_call_us(calls: int, rounds: int, call) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            await call()
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return best


async def measure(workdir: str, calls: int, rounds: int, report: Report) -> None:
    store = LmdbStore(os.path.join(workdir, "data"))
    try:
        rollout = await store.start_rollout("bench")
        assert rollout.attempt is not None
        attempt_id = rollout.attempt.attempt_id
        await store.add_spans(
            [new_span(f"s{i}", rollout_id=rollout.rollout_id, attempt_id=attempt_id) for i in range(10)]
        )
        backend = store.backend
        get = s.GetRolloutRequest(rollout_id=rollout.rollout_id)
        resources = s.GetResourcesRequest()
        spans = s.QuerySpansRequest(rollout_id=rollout.rollout_id, attempt_id="latest")
        kept: list[Exception] = []  # failed reads kept alive, as a reference cycle would keep them

        async def get_rollout() -> None:
            await backend.get_rollout(get)

        async def missing_resources() -> None:
            try:
                await backend.get_resources(resources)
            except NotFoundError as exc:
                if len(kept) < 900:
                    kept.append(exc)

        async def query_spans() -> None:
            async for _ in backend.query_span_bytes(spans):
                pass

        report.add("GetRollout", await per_call_us(calls, rounds, get_rollout), "us/call")
        report.add(
            "GetResources, none added (NOT_FOUND)", await per_call_us(calls, rounds, missing_resources), "us/call"
        )
        report.add("QuerySpans, 10 spans", await per_call_us(calls // 4, rounds, query_spans), "us/call")
        rows = backend.env.readers().splitlines()[1:]
        held = sum(1 for row in rows if row.split() and row.split()[0] == str(os.getpid()))
        report.add(
            "reader slots held at the end",
            held,
            "slots",
            target="<= 4",
            met=held <= 4,
            note=f"{len(kept)} failed reads kept alive",
        )
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (the best is kept)")
    parser.add_argument("--out", default="read_txn_bench", help="result file name under bench/results")
    parser.add_argument("--label", default="", help="a note kept with the results (e.g. before/after)")
    args = parser.parse_args()
    report = Report("embedded store read path")
    report.context.update(label=args.label, calls=args.calls, rounds=args.rounds)
    return run_and_save(report, args.out, lambda workdir: measure(workdir, args.calls, args.rounds, report))


if __name__ == "__main__":
    raise SystemExit(main())
