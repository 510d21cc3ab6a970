"""The ``agl`` command. Each subcommand is one module, listed once in :data:`SUBCOMMANDS`.

A subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int`` (the exit code).
It is imported only when its subcommand runs, so a heavy one does not slow the others down. To
add a subcommand, write its module and add one line here.

A command group (``agl rollouts list``, ``agl resources diff``) is such a module too, built with
:func:`agl_core.cli.command.group` from its own list of leaves: adding ``agl rollouts delete`` is
one line in :data:`agl_core.cli.rollouts.SUBCOMMANDS`, adding ``agl store ...`` is a group module
and one line here. Leaves get the connection options and ``--json`` from
:mod:`agl_core.cli.connect`; a single command gets them with :func:`agl_core.cli.command.single`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# (the word after ``agl``, the module, one line of help)
SUBCOMMANDS: list[tuple[str, str, str]] = [
    (
        "plugins",
        "agl_core.cli.plugins",
        "list the installed plugins, where they come from and what they provide",
    ),
    ("runner", "agl_core.cli.runner", "serve an agent: take work from agl-server and run it"),
    (
        "llm-proxy",
        "agl_llm_proxy.cli",
        "OpenAI-compatible proxy in front of vLLM servers that records each call of an attempt as a span",
    ),
    ("rollouts", "agl_core.cli.rollouts", "list, show, watch and cancel rollouts; a rollout's span tree"),
    ("resources", "agl_core.cli.resources", "resources sets: versions, contents, diff of two"),
    ("workers", "agl_core.cli.workers", "the workers the server knows and what each holds"),
    ("stats", "agl_core.cli.stats", "counts and data size of the server's store"),
    ("export", "agl_core.cli.export", "rollouts, attempts and spans as JSON Lines"),
    ("store", "agl_core.cli.store", "the store as a whole: online backup, data size"),
]


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    try:
        return distribution_version("agl")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agl", description="Train AI agents with agl.")
    parser.add_argument("--version", action="version", version=f"agl {version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, _module, help_text in SUBCOMMANDS:
        subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    known = {name: (module, help_text) for name, module, help_text in SUBCOMMANDS}
    if not argv or argv[0] not in known:
        build_parser().parse_args(
            argv[:1]
        )  # --version prints and exits here  # prints usage: --help, or the error for an unknown command
        return 2
    module_name, help_text = known[argv[0]]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"agl {argv[0]}", description=help_text)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(argv[1:])) or 0)


if __name__ == "__main__":
    sys.exit(main())
