"""Command groups of ``agl`` (``agl rollouts list``, ``agl resources diff``): how a leaf command is
declared and how a group is put together from a list of them.

A leaf command is any object with ``add_arguments(parser)`` and ``run(args) -> int`` (a module, or a
:class:`Command`). A group module lists its leaves once::

    SUBCOMMANDS = [
        ("list", "agl_core.cli.rollouts:LIST", "list rollouts, newest first, with filters"),
        ("delete", "agl_core.cli.rollouts_delete", "delete rollouts ..."),  # a module as a leaf
    ]
    add_arguments, run = group(SUBCOMMANDS)

so adding ``agl rollouts delete`` is a module with ``add_arguments``/``run`` and one line in that list,
and adding a whole group (``agl store``) is such a group module and one line in
:data:`agl_core.cli.SUBCOMMANDS`. A target is ``"module"`` or ``"module:ATTRIBUTE"``.

Every leaf of a group gets the connection options (``--server``, ``--token``, ...) and ``--json``
(:mod:`agl_core.cli.connect`) unless it says ``connects = False``; the parsed values reach it as
``args.server``, ``args.json`` and so on.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agl_core.cli.connect import add_connection_arguments, report


@dataclass(frozen=True)
class Command:
    """A leaf command made of two functions (several of them can share one module)."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    connects: bool = True


def resolve(target: str) -> Any:
    """The leaf that ``"module"`` or ``"module:ATTRIBUTE"`` names."""
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def group(
    subcommands: Sequence[tuple[str, str, str]],
) -> tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]:
    """``(add_arguments, run)`` of a group made of ``(word, target, help)`` leaves."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        words = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        for word, target, help_text in subcommands:
            leaf = resolve(target)
            sub = words.add_parser(word, help=help_text, description=_description(leaf, help_text))
            sub.formatter_class = argparse.RawDescriptionHelpFormatter
            leaf.add_arguments(sub)
            if getattr(leaf, "connects", True):
                add_connection_arguments(sub)
            sub.set_defaults(_leaf_run=leaf.run)

    def run(args: argparse.Namespace) -> int:
        return report("agl", lambda: int(args._leaf_run(args) or 0))

    return add_arguments, run


def _description(leaf: Any, help_text: str) -> str:
    """The leaf's help page: its one-line help, then the docstring of its run function (or module)."""
    run = getattr(leaf, "run", None)
    doc = (getattr(run, "__doc__", None) if isinstance(leaf, Command) else getattr(leaf, "__doc__", None)) or ""
    doc = _dedent(doc)
    return f"{help_text}\n\n{doc}" if doc else help_text


def _dedent(text: str) -> str:
    import inspect

    return inspect.cleandoc(text)


def single(
    leaf: Command,
) -> tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]:
    """``(add_arguments, run)`` of a top-level command without subcommands (``agl workers``), with
    the connection options and error reporting a group's leaves get."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        doc = _dedent(leaf.run.__doc__ or "")
        if doc:
            parser.description = f"{parser.description}\n\n{doc}" if parser.description else doc
        leaf.add_arguments(parser)
        if leaf.connects:
            add_connection_arguments(parser)

    def run(args: argparse.Namespace) -> int:
        return report("agl", lambda: int(leaf.run(args) or 0))

    return add_arguments, run
