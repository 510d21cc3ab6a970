"""``agl rollouts watch``: rollout status changes as they happen; ``--spans ROLLOUT_ID``: the spans
of one rollout as they arrive.

Status changes come from the server's WatchRollouts stream (its durable event log): by default
only changes after the command starts; ``--from-start`` replays the log from the first event,
``--after EVENT_ID`` resumes after an event seen before. The stream survives a server restart
shorter than ``--retry-deadline``. ``watching ...`` on stderr says the subscription is in place.

Spans are polled every ``--interval`` seconds (the store has no span stream); the tail ends once
the rollout is finished and its last spans are printed.

With --json each event is one line (JSON Lines): ``{"event_id", "time", "rollout_id",
"old_status", "new_status", "attempt_id", "rollout": Rollout}``; with --spans each span is one line,
shaped as in ``agl export``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from agl_core.cli import output
from agl_core.cli.connect import CliError, with_store
from agl_core.cli.rollouts import STATUSES, not_found, split_words
from agl_core.cli.span_json import span_to_dict
from agl_core.client import GrpcStore
from agl_core.types.core import RolloutEvent

TERMINAL = {"succeeded", "failed", "cancelled"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id", action="append", dest="ids", metavar="ID[,ID]", help="only these rollouts")
    parser.add_argument("--status", action="append", metavar="STATUS[,STATUS]", help="only changes to these statuses")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from-start", action="store_true", help="replay the event log from its first event")
    start.add_argument("--after", type=int, metavar="EVENT_ID", help="resume after this event id")
    parser.add_argument("--count", type=int, metavar="N", help="stop after N events (or N spans with --spans)")
    parser.add_argument("--spans", metavar="ROLLOUT_ID", help="tail the spans of this rollout instead")
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS", help="span polling interval (default 1)"
    )


def run(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        raise CliError(f"--count is {args.count}; give 1 or more", 2)
    if args.spans:
        return with_store(args, lambda store: _tail_spans(store, args))
    statuses = split_words(args.status)
    unknown = sorted(set(statuses) - set(STATUSES))
    if unknown:
        raise CliError(f"unknown status {', '.join(unknown)}; use one of {', '.join(STATUSES)}", 2)
    return with_store(args, lambda store: _watch(store, args, statuses))


async def _watch(store: GrpcStore, args: argparse.Namespace, statuses: list[str]) -> int:
    after = 0 if args.from_start else args.after
    seen = 0
    async with store.watch_rollouts(
        rollout_ids=split_words(args.ids) or None, status_in=statuses or None, after_event_id=after
    ) as watch:
        print(f"watching {store.address} after event {watch.last_event_id} (Ctrl-C to stop)", file=sys.stderr)
        sys.stderr.flush()
        async for event in watch:
            _print_event(event, args.json)
            seen += 1
            if args.count is not None and seen >= args.count:
                break
    return 0


def event_dict(event: RolloutEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "time": event.time,
        "rollout_id": event.rollout_id,
        "old_status": event.old_status.value if event.old_status else None,
        "new_status": event.new_status.value,
        "attempt_id": event.rollout.attempt.attempt_id if event.rollout.attempt else None,
        "rollout": event.rollout,
    }


def _print_event(event: RolloutEvent, as_json: bool) -> None:
    if as_json:
        output.print_json_line(event_dict(event))
        return
    attempt = event.rollout.attempt
    old = event.old_status.value if event.old_status else "-"
    worker = f" on {attempt.worker_id}" if attempt and attempt.worker_id else ""
    attempt_text = f"  attempt {attempt.sequence_id} {attempt.attempt_id}{worker}" if attempt else ""
    print(
        f"{output.when(event.time)}  #{event.event_id}  {event.rollout_id}  {old} -> {event.new_status.value}"
        f"{attempt_text}",
        flush=True,
    )


async def _tail_spans(store: GrpcStore, args: argparse.Namespace) -> int:
    rollout_id = args.spans
    rollout = await store.get_rollout(rollout_id)
    if rollout is None:
        raise not_found(rollout_id)
    print(f"watching the spans of {rollout_id} on {store.address} (Ctrl-C to stop)", file=sys.stderr)
    sys.stderr.flush()
    last = 0
    seen = 0
    while True:
        # Read the status before the spans: spans stored before it turned terminal are then all seen.
        rollout = await store.get_rollout(rollout_id)
        finished = rollout is None or rollout.status.value in TERMINAL
        async for span in store.iter_spans(rollout_id, after_sequence_id=last):
            last = max(last, span.sequence_id)
            _print_span(span, args.json)
            seen += 1
            if args.count is not None and seen >= args.count:
                return 0
        if finished:
            if not args.json:
                status = rollout.status.value if rollout is not None else "deleted"
                print(f"rollout {rollout_id} is {status}", file=sys.stderr)
            return 0
        await asyncio.sleep(args.interval)


def _print_span(span: Any, as_json: bool) -> None:
    if as_json:
        output.print_json_line(span_to_dict(span))
        return
    took = output.seconds_text(max(0, span.end_time_unix_nano - span.start_time_unix_nano) / 1e9)
    print(
        f"{output.when(span.start_time_unix_nano / 1e9)}  #{span.sequence_id}  {span.attempt_id}  "
        f"{span.name}  {took}  span {span.span_id.hex()}",
        flush=True,
    )
