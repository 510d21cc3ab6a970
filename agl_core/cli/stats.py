"""``agl stats``: what the server holds (GetStats): rollouts by status, the queue, counts, data size."""

from __future__ import annotations

import argparse
from typing import Any

from google.protobuf.json_format import MessageToDict

from agl_core.cli import output
from agl_core.cli.command import Command, single
from agl_core.cli.connect import with_store
from agl_core.client import GrpcStore
from agl_core.proto import store_pb2 as s

SHOWN = {
    "backend",
    "start_time",
    "rollouts",
    "rollouts_by_status",
    "queue_length",
    "attempts",
    "spans",
    "resources",
    "workers",
    "data_bytes",
    "map_size_bytes",
    "last_event_id",
    # in the "data file" line
    "file_bytes",
    "used_bytes",
    "used_pages",
    "free_bytes",
}


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options of its own


def _run(args: argparse.Namespace) -> int:
    """With --json: every field of GetStatsResponse by its proto name, counts as integers,
    ``rollouts_by_status`` as ``{status: count}`` and ``start_time`` in Unix seconds."""

    async def body(store: GrpcStore) -> s.GetStatsResponse:
        return await store.backend.get_stats(s.GetStatsRequest())

    stats = stats_dict(with_store(args, body))
    if args.json:
        output.print_json(stats)
        return 0
    output.print_fields(
        [
            ("backend", stats["backend"]),
            ("up since", output.when(stats["start_time"])),
            ("rollouts", stats["rollouts"]),
            *((f"  {name}", count) for name, count in sorted(stats["rollouts_by_status"].items())),
            ("queue length", stats["queue_length"]),
            ("attempts", stats["attempts"]),
            ("spans", stats["spans"]),
            ("resources", stats["resources"]),
            ("workers", stats["workers"]),
            ("data", f"{_size(stats['data_bytes'])} of a {_size(stats['map_size_bytes'])} map"),
            *_space(stats),
            ("last event", stats["last_event_id"]),
            # fields a newer server adds show as they come, by their proto names
            *((name, output.short(value, 100)) for name, value in stats.items() if name not in SHOWN),
        ]
    )
    return 0


def stats_dict(stats: s.GetStatsResponse) -> dict[str, Any]:
    """Every field, including those a newer server adds, by proto name; int64 as JSON integers."""
    data = MessageToDict(stats, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    for field in stats.DESCRIPTOR.fields:
        if field.name == "start_time":
            data["start_time"] = stats.start_time.ToNanoseconds() / 1e9 if stats.HasField("start_time") else None
        elif field.message_type is not None and field.message_type.GetOptions().map_entry:
            data[field.name] = dict(getattr(stats, field.name))
        elif field.type in (field.TYPE_INT64, field.TYPE_UINT64, field.TYPE_SINT64):
            data[field.name] = int(getattr(stats, field.name))
    return data


def _space(stats: dict[str, Any]) -> list[tuple[str, str]]:
    """The data file's use, from a server that reports it (file_bytes and the rest, since DeleteRollouts)."""
    if not stats.get("file_bytes"):
        return []
    return [
        (
            "data file",
            f"{_size(stats['file_bytes'])} on disk, {_size(stats['used_bytes'])} in use, "
            f"{_size(stats['free_bytes'])} free for reuse",
        )
    ]


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


STATS = Command(_add_arguments, _run)
add_arguments, run = single(STATS)
