"""``agl rollouts delete``: delete rollouts with their attempts, spans and events (DeleteRollouts).

Deletes the rollouts that match every criterion given (ids, --older-than/--ended-before,
--status), in short steps on the server so it keeps serving. Only finished rollouts are deleted
unless --force; naming an unfinished one by id without --force deletes nothing and fails. Ids
of no rollout are reported and make the exit code 1 (the others are still deleted).

With --json: ``{"deleted_rollouts", "deleted_attempts", "deleted_spans", "skipped_active",
"not_found_rollout_ids", "dry_run"}``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from agl_core.cli import output
from agl_core.cli.connect import EXIT_USAGE, CliError, with_store
from agl_core.client import GrpcStore
from agl_core.errors import InvalidArgumentError
from agl_core.store import deletion
from agl_core.store.deletion import DeleteSummary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rollout_ids", nargs="*", metavar="ROLLOUT_ID", help="rollouts by id")
    parser.add_argument(
        "--older-than", metavar="AGE", help="rollouts that ended more than AGE ago: 90s, 30m, 12h, 7d, 2w"
    )
    parser.add_argument(
        "--ended-before",
        metavar="TIME",
        help="rollouts that ended before TIME: ISO 8601 (2026-11-30T12:00:00+00:00; no zone: local time) "
        "or Unix seconds",
    )
    parser.add_argument(
        "--status",
        action="append",
        metavar="STATUS[,STATUS]",
        help="only rollouts with these statuses (repeatable); without --force only succeeded, failed, cancelled",
    )
    parser.add_argument(
        "--force", action="store_true", help="also delete rollouts that have not finished (queued, running)"
    )
    parser.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")


def run(args: argparse.Namespace) -> int:
    try:
        older_than = deletion.parse_age(args.older_than, "--older-than") if args.older_than else None
        statuses = [word for value in args.status or () for word in value.split(",") if word.strip()]
        deletion.parse_statuses(statuses, "--status")  # a misspelt status fails here, before any call
    except InvalidArgumentError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    ended_before = _time(args.ended_before) if args.ended_before else None

    async def body(store: GrpcStore) -> DeleteSummary:
        return await store.delete_rollouts(
            args.rollout_ids,
            older_than=older_than,
            ended_before=ended_before,
            status_in=statuses or None,
            force=args.force,
            dry_run=args.dry_run,
        )

    summary = with_store(args, body)
    if args.json:
        output.print_json({**summary.__dict__, "dry_run": args.dry_run})
    else:
        verb = "would delete" if args.dry_run else "deleted"
        print(
            f"{verb} {summary.deleted_rollouts} rollouts ({summary.deleted_attempts} attempts, "
            f"{summary.deleted_spans} spans)"
        )
        if summary.skipped_active:
            print(f"kept {summary.skipped_active} unfinished rollouts that match (--force deletes them too)")
        for rollout_id in summary.not_found_rollout_ids:
            print(f"agl: rollout {rollout_id!r} not found", file=sys.stderr)
    return 1 if summary.not_found_rollout_ids else 0


def _time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise CliError(
            f"--ended-before {text!r} is neither ISO 8601 (2026-11-30T12:00:00+00:00) nor Unix seconds", EXIT_USAGE
        ) from None
