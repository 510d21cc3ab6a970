"""``agl workers``: the workers the server knows (runner processes and threads) and what they hold."""

from __future__ import annotations

import argparse
import time
from typing import Any

from agl_core.cli import output
from agl_core.cli.command import Command, single
from agl_core.cli.connect import CliError, with_store
from agl_core.cli.rollouts import split_words
from agl_core.client import GrpcStore
from agl_core.types.core import WorkerStatus

WORKER_STATUSES = [status.value for status in WorkerStatus]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status", action="append", metavar="STATUS[,STATUS]", help=f"only these: {', '.join(WORKER_STATUSES)}"
    )
    parser.add_argument("--id-contains", metavar="TEXT", help="only worker ids containing TEXT")
    parser.add_argument("--limit", type=int, default=200, help="workers to show at most (default 200; max 1000)")


def _run(args: argparse.Namespace) -> int:
    """A table of workers: status, the rollout and attempt each holds, and how long ago each last sent
    a heartbeat. With --json: ``{"total": N, "items": [Worker, ...]}``."""
    statuses = split_words(args.status)
    unknown = sorted(set(statuses) - set(WORKER_STATUSES))
    if unknown:
        raise CliError(f"unknown worker status {', '.join(unknown)}; use one of {', '.join(WORKER_STATUSES)}", 2)

    async def body(store: GrpcStore) -> Any:
        return await store.query_workers(
            status_in=statuses or None, worker_id_contains=args.id_contains, limit=args.limit
        )

    page = with_store(args, body)
    if args.json:
        output.print_json({"total": page.total, "items": page.items})
        return 0
    now = time.time()
    output.print_table(
        ["WORKER", "STATUS", "ROLLOUT", "ATTEMPT", "HEARTBEAT", "STATS"],
        (
            [
                w.worker_id,
                w.status.value,
                w.current_rollout_id or "",
                w.current_attempt_id or "",
                f"{output.seconds_text(max(0.0, now - w.last_heartbeat_time))} ago" if w.last_heartbeat_time else "",
                output.short(w.heartbeat_stats, 50) if w.heartbeat_stats else "",
            ]
            for w in page.items
        ),
    )
    output.console().print(f"{len(page.items)} of {page.total} workers", style="dim")
    return 0


add_arguments, run = single(Command(_add_arguments, _run))
