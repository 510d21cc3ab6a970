"""``agl export --out FILE.jsonl``: rollouts with their attempts and spans as JSON Lines.

One object per line, each with a ``kind``: a ``rollout`` (the Rollout, without its latest attempt),
then that rollout's ``attempt`` lines, then its ``span`` lines, then the next rollout; the last line
is a ``summary`` with the counts written, so a cut-off file is easy to tell. Rollouts come oldest
first. ``--out -`` writes to stdout; a file is written next to its destination and moved into
place only when complete.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any, TextIO

from agl_core.cli import output
from agl_core.cli.command import Command, single
from agl_core.cli.connect import CliError, with_store
from agl_core.cli.rollout_info import all_attempts
from agl_core.cli.rollouts import MODES, STATUSES, split_words
from agl_core.cli.span_json import span_to_dict
from agl_core.client import GrpcStore
from agl_core.proto.trace_pb2 import Span
from agl_core.types.core import Attempt

PAGE = 1000
AHEAD = 8  # rollouts whose contents are fetched ahead of the one being written
FORMAT_VERSION = 1


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="FILE", help="the JSONL file to write, or - for stdout")
    parser.add_argument("--status", action="append", metavar="STATUS[,STATUS]", help="only rollouts in these statuses")
    parser.add_argument("--id", action="append", dest="ids", metavar="ID[,ID]", help="only these rollouts")
    parser.add_argument("--id-contains", metavar="TEXT", help="only rollout ids containing TEXT")
    parser.add_argument("--mode", choices=MODES, help="only rollouts of this mode")
    parser.add_argument("--no-spans", action="store_true", help="rollouts and attempts only")


def _run(args: argparse.Namespace) -> int:
    """Lines: ``{"kind": "rollout", ...Rollout}``, ``{"kind": "attempt", ...Attempt}``,
    ``{"kind": "span", ...span}`` (docs/cli.md), and last ``{"kind": "summary", "format_version": 1,
    "server", "time", "rollouts", "attempts", "spans"}``. The counts also go to stderr as one line
    (``exported N rollouts, ...``); with --json and a file, the summary object goes to stdout
    instead. Rollouts come oldest first, each followed by its attempts and spans; a file is
    written beside its destination and moved into place only when complete."""
    statuses = split_words(args.status)
    unknown = sorted(set(statuses) - set(STATUSES))
    if unknown:
        raise CliError(f"unknown status {', '.join(unknown)}; use one of {', '.join(STATUSES)}", 2)
    if args.out == "-":
        summary = with_store(args, lambda store: _export(store, args, statuses, sys.stdout))
    else:
        target = Path(args.out)
        try:
            fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent or ".")
        except OSError as exc:
            raise CliError(f"cannot write {args.out!r}: {exc}") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                summary = with_store(args, lambda store: _export(store, args, statuses, file))
            os.replace(temporary, target)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        if args.json:
            output.print_json(summary)
            return 0
    print(
        f"exported {summary['rollouts']} rollouts, {summary['attempts']} attempts, {summary['spans']} spans",
        file=sys.stderr,
    )
    return 0


async def _export(store: GrpcStore, args: argparse.Namespace, statuses: list[str], out: TextIO) -> dict[str, Any]:
    counts = {"rollouts": 0, "attempts": 0, "spans": 0}
    offset = 0
    while True:
        page = await store.query_rollouts(
            status_in=statuses or None,
            rollout_id_in=split_words(args.ids) or None,
            rollout_id_contains=args.id_contains,
            mode=args.mode,
            sort_by="start_time",
            order="asc",
            limit=PAGE,
            offset=offset,
        )
        # Fetch the attempts and spans of the next few rollouts while writing the current one, in
        # order: on a remote server the round trips, not the writing, set the pace.
        window: deque[asyncio.Task[tuple[list[Attempt], list[Span]]]] = deque()
        pending = iter(page.items)
        try:
            for rollout in page.items:
                while len(window) < AHEAD and (ahead := next(pending, None)) is not None:
                    window.append(asyncio.create_task(_contents(store, ahead.rollout_id, spans=not args.no_spans)))
                attempts, spans = await window.popleft()
                rollout.attempt = None  # the attempts follow, all of them
                _line(out, "rollout", output.to_jsonable(rollout))
                for attempt in attempts:
                    _line(out, "attempt", output.to_jsonable(attempt))
                for span in spans:
                    _line(out, "span", span_to_dict(span))
                counts["rollouts"] += 1
                counts["attempts"] += len(attempts)
                counts["spans"] += len(spans)
        finally:
            for task in window:  # an error or a closed pipe: nothing more to fetch
                task.cancel()
        offset += len(page.items)
        if not page.items or offset >= page.total:
            break
    summary = {"kind": "summary", "format_version": FORMAT_VERSION, "server": store.address, "time": time.time()}
    summary.update(counts)
    out.write(output.dumps(summary) + "\n")
    out.flush()
    return summary


async def _contents(store: GrpcStore, rollout_id: str, *, spans: bool) -> tuple[list[Attempt], list[Span]]:
    attempts = await all_attempts(store, rollout_id)
    return attempts, (await store.query_spans(rollout_id) if spans else [])


def _line(out: TextIO, kind: str, data: dict[str, Any]) -> None:
    out.write(output.dumps({"kind": kind, **data}) + "\n")


add_arguments, run = single(Command(_add_arguments, _run))
