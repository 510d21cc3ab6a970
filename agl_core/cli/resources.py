"""``agl resources``: the resources sets (LLM endpoints, prompt templates, ...) and their versions.

A set keeps its id when it is updated; its version counts the updates. The store keeps only each
set's current content, so ``diff`` compares two sets (two ids), not two versions of one set.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from typing import Any

from agl_core.cli import output
from agl_core.cli.command import Command, group
from agl_core.cli.connect import CliError, with_store
from agl_core.client import GrpcStore
from agl_core.types.resources import LLM, CustomResource, PromptTemplate, ProxyLLM, Resource, ResourcesUpdate

SUBCOMMANDS: list[tuple[str, str, str]] = [
    ("list", "agl_core.cli.resources:LIST", "list resources sets with their versions, newest first"),
    ("show", "agl_core.cli.resources:SHOW", "one resources set (default: the latest) in full"),
    ("diff", "agl_core.cli.resources:DIFF", "a unified diff of two resources sets, prompt templates line by line"),
]


def resource_dict(resource: Resource) -> dict[str, Any]:
    """A resource as JSON with its ``type`` (llm, proxy_llm, prompt_template or the custom type);
    an LLM's ``api_key`` is masked (the CLI's output ends up in logs and tickets)."""
    if isinstance(resource, CustomResource):
        return {"type": resource.type, "value": output.to_jsonable(resource.value)}
    kind = {ProxyLLM: "proxy_llm", LLM: "llm", PromptTemplate: "prompt_template"}.get(type(resource), "unknown")
    fields = output.to_jsonable(resource)
    if fields.get("api_key"):
        fields["api_key"] = "***"
    return {"type": kind, **fields}


def update_dict(update: ResourcesUpdate) -> dict[str, Any]:
    return {
        "resources_id": update.resources_id,
        "version": update.version,
        "create_time": update.create_time,
        "update_time": update.update_time,
        "resources": {name: resource_dict(r) for name, r in sorted(update.resources.items())},
    }


async def _get(store: GrpcStore, resources_id: str | None) -> ResourcesUpdate:
    update = await (store.get_resources(resources_id) if resources_id else store.get_latest_resources())
    if update is None:
        if resources_id:
            raise CliError(f"resources {resources_id!r} not found (`agl resources list` shows the ids)")
        raise CliError("the server holds no resources yet")
    return update


# --- list ------------------------------------------------------------------------------------------


def _add_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id-contains", metavar="TEXT", help="only ids containing TEXT")
    parser.add_argument("--limit", type=int, default=50, help="sets to show at most (default 50; max 1000)")
    parser.add_argument("--offset", type=int, default=0, help="matching sets to skip")


def _run_list(args: argparse.Namespace) -> int:
    """With --json: ``{"total": N, "latest": ID | null, "items": [{"resources_id", "version",
    "create_time", "update_time", "resources": {name: resource}}]}``."""

    async def body(store: GrpcStore) -> Any:
        page = await store.query_resources(
            resources_id_contains=args.id_contains,
            sort_by="update_time",
            order="desc",
            limit=args.limit,
            offset=args.offset,
        )
        latest = await store.get_latest_resources()
        return page, latest.resources_id if latest else None

    page, latest = with_store(args, body)
    if args.json:
        output.print_json({"total": page.total, "latest": latest, "items": [update_dict(u) for u in page.items]})
        return 0
    output.print_table(
        ["RESOURCES", "VERSION", "LATEST", "CREATED", "UPDATED", "NAMES"],
        (
            [
                u.resources_id,
                u.version,
                "*" if u.resources_id == latest else "",
                output.when(u.create_time),
                output.when(u.update_time),
                ", ".join(f"{name} ({resource_dict(r)['type']})" for name, r in sorted(u.resources.items())),
            ]
            for u in page.items
        ),
    )
    output.console().print(f"{len(page.items)} of {page.total} resources sets", style="dim")
    return 0


LIST = Command(_add_list_arguments, _run_list)


# --- show ------------------------------------------------------------------------------------------


def _add_show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("resources_id", nargs="?", metavar="RESOURCES_ID", help="default: the latest set")


def _run_show(args: argparse.Namespace) -> int:
    """With --json: the set as one item of ``agl resources list --json``."""
    update = with_store(args, lambda store: _get(store, args.resources_id))
    if args.json:
        output.print_json(update_dict(update))
        return 0
    print(_text(update), end="")
    return 0


def _text(update: ResourcesUpdate) -> str:
    """A set as lines a diff reads well: one header per resource, a template's text verbatim."""
    lines = [f"resources {update.resources_id} version {update.version}\n"]
    for name, resource in sorted(update.resources.items()):
        data = resource_dict(resource)
        lines.append(f"\n[{name}] {data.pop('type')}\n")
        template = data.pop("template", None) if isinstance(resource, PromptTemplate) else None
        for key, value in data.items():
            lines.append(f"{key}: {output.dumps(value)}\n")
        if template is not None:
            lines.append("template:\n")
            lines.extend(f"  {line}\n" for line in template.splitlines())
    return "".join(lines)


SHOW = Command(_add_show_arguments, _run_show)


# --- diff ------------------------------------------------------------------------------------------


def _add_diff_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="RESOURCES_ID_A")
    parser.add_argument("b", metavar="RESOURCES_ID_B")
    parser.add_argument("-U", "--context", type=int, default=3, help="lines of context (default 3)")


def _run_diff(args: argparse.Namespace) -> int:
    """A unified diff (difflib) of the two sets as ``agl resources show`` prints them. Exit code 0
    when they are the same, 1 when they differ (as diff(1)).

    With --json: ``{"a": ID, "b": ID, "same": bool, "added": [name], "removed": [name],
    "changed": [name], "diff": "unified diff text"}``.
    """

    async def body(store: GrpcStore) -> tuple[ResourcesUpdate, ResourcesUpdate]:
        return await _get(store, args.a), await _get(store, args.b)

    a, b = with_store(args, body)
    text_a, text_b = _text(a).splitlines(keepends=True)[1:], _text(b).splitlines(keepends=True)[1:]
    diff = "".join(
        difflib.unified_diff(
            text_a, text_b, f"{a.resources_id} v{a.version}", f"{b.resources_id} v{b.version}", n=args.context
        )
    )
    if args.json:
        names_a, names_b = set(a.resources), set(b.resources)
        output.print_json(
            {
                "a": a.resources_id,
                "b": b.resources_id,
                "same": not diff,
                "added": sorted(names_b - names_a),
                "removed": sorted(names_a - names_b),
                "changed": sorted(n for n in names_a & names_b if _differs(a.resources[n], b.resources[n])),
                "diff": diff,
            }
        )
    elif diff:
        print(diff, end="")
    else:
        print(f"{a.resources_id} and {b.resources_id} hold the same resources")
    return 1 if diff else 0


def _differs(x: Resource, y: Resource) -> bool:
    return type(x) is not type(y) or dataclasses.asdict(x) != dataclasses.asdict(y)


DIFF = Command(_add_diff_arguments, _run_diff)

add_arguments, run = group(SUBCOMMANDS)
