"""``agl rollouts``: list, show, cancel rollouts, their span trees, and the live watch stream.

To add a subcommand (``agl rollouts delete``), write a module with ``add_arguments(parser)`` and
``run(args) -> int`` and add one line to :data:`SUBCOMMANDS` (see :mod:`agl_core.cli.command`).
"""

from __future__ import annotations

import argparse
from typing import Any

from agl_core.cli import output
from agl_core.cli.command import Command, group
from agl_core.cli.connect import CliError, with_store
from agl_core.cli.rollout_info import rollout_details
from agl_core.client import GrpcStore
from agl_core.types import RolloutStatus
from agl_core.types.core import Rollout, RolloutMode

SUBCOMMANDS: list[tuple[str, str, str]] = [
    ("list", "agl_core.cli.rollouts:LIST", "list rollouts (newest first) with filters"),
    ("show", "agl_core.cli.rollouts:SHOW", "one rollout: attempts, resources version, reward, status history"),
    ("spans", "agl_core.cli.rollout_spans", "the spans of a rollout as a tree, with timings"),
    ("watch", "agl_core.cli.rollout_watch", "tail rollout status changes (or the spans of one rollout) live"),
    ("cancel", "agl_core.cli.rollouts:CANCEL", "cancel rollouts that have not finished"),
    ("delete", "agl_core.cli.rollouts_delete", "delete rollouts with their attempts and spans, by id, age or status"),
]

STATUSES = [status.value for status in RolloutStatus]
MODES = [mode.value for mode in RolloutMode]


def split_words(values: list[str] | None) -> list[str]:
    """``--status a,b --status c`` as ``[a, b, c]``."""
    return [word.strip() for value in values or () for word in value.split(",") if word.strip()]


def not_found(rollout_id: str) -> CliError:
    return CliError(f"rollout {rollout_id!r} not found (`agl rollouts list` shows the ids the server holds)")


# --- list ------------------------------------------------------------------------------------------


def _add_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status",
        action="append",
        metavar="STATUS[,STATUS]",
        help=f"only these statuses (repeatable): {', '.join(STATUSES)}",
    )
    parser.add_argument("--id", action="append", dest="ids", metavar="ID[,ID]", help="only these rollout ids")
    parser.add_argument("--id-contains", metavar="TEXT", help="only rollout ids containing TEXT")
    parser.add_argument("--mode", choices=MODES, help="only rollouts of this mode")
    parser.add_argument(
        "--sort-by",
        default="start_time",
        choices=["start_time", "end_time", "rollout_id", "status"],
        help="sort key (default start_time)",
    )
    parser.add_argument("--order", default="desc", choices=["asc", "desc"], help="sort order (default desc)")
    parser.add_argument("--limit", type=int, default=50, help="rollouts to show at most (default 50; max 1000)")
    parser.add_argument("--offset", type=int, default=0, help="matching rollouts to skip")


def _run_list(args: argparse.Namespace) -> int:
    """Prints a table of rollouts (REWARD: what the runner reported with the latest attempt).
    With --json one object ``{"total": N, "items": [Rollout, ...]}``, ``total`` counting every
    match regardless of --limit."""
    statuses = split_words(args.status)
    unknown = sorted(set(statuses) - set(STATUSES))
    if unknown:
        raise CliError(f"unknown status {', '.join(unknown)}; use one of {', '.join(STATUSES)}", 2)
    if not 1 <= args.limit <= 1000:
        raise CliError(f"--limit is {args.limit}; give 1 to 1000 (and --offset to page)", 2)

    async def body(store: GrpcStore) -> Any:
        return await store.query_rollouts(
            status_in=statuses or None,
            rollout_id_in=split_words(args.ids) or None,
            rollout_id_contains=args.id_contains,
            mode=args.mode,
            sort_by=args.sort_by,
            order=args.order,
            limit=args.limit,
            offset=args.offset,
        )

    page = with_store(args, body)
    if args.json:
        output.print_json({"total": page.total, "items": page.items})
        return 0
    output.print_table(
        ["ROLLOUT", "STATUS", "MODE", "ATTEMPTS", "WORKER", "RESOURCES", "STARTED", "DURATION", "REWARD", "INPUT"],
        (_row(r) for r in page.items),
    )
    shown = f"{args.offset + 1}-{args.offset + len(page.items)}" if page.items else "none"
    output.console().print(f"{shown} of {page.total} rollouts", style="dim")
    return 0


def _row(rollout: Rollout) -> list[Any]:
    attempt = rollout.attempt
    return [
        rollout.rollout_id,
        rollout.status.value,
        rollout.mode.value if rollout.mode else "",
        attempt.sequence_id if attempt else 0,
        attempt.worker_id if attempt else "",
        rollout.resources_id or "",
        output.when(rollout.start_time),
        output.duration(rollout.start_time, rollout.end_time),
        _reward(rollout),
        output.short(rollout.input, 40),
    ]


def _reward(rollout: Rollout) -> str:
    """The reward the runner reported with the latest attempt (agl's runners put it in the
    attempt's metadata; `agl rollouts show` reads the reward spans themselves)."""
    reward = rollout.attempt.metadata.get("reward") if rollout.attempt else None
    return f"{reward:g}" if isinstance(reward, (int, float)) and not isinstance(reward, bool) else ""


LIST = Command(_add_list_arguments, _run_list)


# --- show ------------------------------------------------------------------------------------------


def _add_show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rollout_id", metavar="ROLLOUT_ID")
    parser.add_argument(
        "--no-history",
        action="store_true",
        help="skip the status history (reading it scans the server's whole event log)",
    )


def _run_show(args: argparse.Namespace) -> int:
    """The rollout, each attempt (start, end, status, worker, reward), the resources version it ran
    with, its final reward (the last ``agl.reward`` span), and its status history.

    The status history comes from the server's event log of status changes (what ``agl rollouts
    watch`` streams): each change with its time. Reading it scans the whole log, events of other
    rollouts included (--no-history skips it; ``history`` is then null). The store keeps no
    history of attempt statuses, only each attempt's current status with its start and end times.

    With --json: ``{"rollout": Rollout, "attempts": [Attempt + "reward"], "resources":
    {"resources_id", "version"} | null, "reward": float | null, "rewards": {name: float},
    "history": [{"event_id", "time", "old_status", "new_status", "attempt_id"}] | null}``.
    """
    details = with_store(args, lambda store: rollout_details(store, args.rollout_id, history=not args.no_history))
    if details is None:
        raise not_found(args.rollout_id)
    if args.json:
        output.print_json(details)
        return 0
    rollout: Rollout = details["rollout"]
    resources = details["resources"]
    output.print_fields(
        [
            ("rollout", rollout.rollout_id),
            ("status", rollout.status.value),
            ("mode", rollout.mode.value if rollout.mode else ""),
            ("resources", f"{resources['resources_id']} v{resources['version']}" if resources else "(latest)"),
            ("reward", "" if details["reward"] is None else f"{details['reward']:g}"),
            ("started", output.when(rollout.start_time)),
            ("ended", output.when(rollout.end_time)),
            ("duration", output.duration(rollout.start_time, rollout.end_time)),
            ("max attempts", rollout.config.max_attempts),
            ("input", output.short(rollout.input, 200)),
            ("metadata", output.short(rollout.metadata, 200) if rollout.metadata else ""),
        ]
    )
    output.print_table(
        ["#", "ATTEMPT", "STATUS", "WORKER", "STARTED", "ENDED", "DURATION", "REWARD"],
        (
            [
                a["sequence_id"],
                a["attempt_id"],
                a["status"],
                a["worker_id"] or "",
                output.when(a["start_time"]),
                output.when(a["end_time"]),
                output.duration(a["start_time"], a["end_time"]),
                "" if a["reward"] is None else f"{a['reward']:g}",
            ]
            for a in details["attempts"]
        ),
        title="attempts",
    )
    if details["history"] is None:
        return 0
    output.print_table(
        ["EVENT", "TIME", "FROM", "TO", "ATTEMPT"],
        (
            [e["event_id"], output.when(e["time"]), e["old_status"] or "", e["new_status"], e["attempt_id"] or ""]
            for e in details["history"]
        ),
        title="status history",
    )
    return 0


SHOW = Command(_add_show_arguments, _run_show)


# --- cancel ----------------------------------------------------------------------------------------


def _add_cancel_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rollout_ids", nargs="+", metavar="ROLLOUT_ID")


def _run_cancel(args: argparse.Namespace) -> int:
    """Sets each rollout's status to cancelled; its running attempt's worker is told through its Work
    stream. A rollout that already finished is refused by the server (a rollout reaches exactly one
    terminal status): the message names it, the others are still cancelled, and the exit code is 1.

    With --json: ``{"cancelled": [Rollout, ...], "errors": [{"rollout_id", "error"}]}``.
    """

    async def body(store: GrpcStore) -> tuple[list[Rollout], list[dict[str, str]]]:
        from agl_core.errors import AglError, NotFoundError

        done: list[Rollout] = []
        errors: list[dict[str, str]] = []
        for rollout_id in args.rollout_ids:
            try:
                done.append(await store.update_rollout(rollout_id, status=RolloutStatus.CANCELLED))
            except NotFoundError:
                errors.append({"rollout_id": rollout_id, "error": str(not_found(rollout_id))})
            except AglError as exc:
                errors.append({"rollout_id": rollout_id, "error": str(exc)})
        return done, errors

    cancelled, errors = with_store(args, body)
    if args.json:
        output.print_json({"cancelled": cancelled, "errors": errors})
    else:
        for rollout in cancelled:
            print(f"cancelled {rollout.rollout_id}")
    if errors:
        if not args.json:
            import sys

            for error in errors:
                print(f"agl: {error['rollout_id']}: {error['error']}", file=sys.stderr)
        return 1
    return 0


CANCEL = Command(_add_cancel_arguments, _run_cancel)

add_arguments, run = group(SUBCOMMANDS)
