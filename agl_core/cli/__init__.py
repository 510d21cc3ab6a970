"""The ``agl`` command. Each subcommand is one module, listed once in :data:`SUBCOMMANDS`.

A subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int`` (the exit code).
It is imported only when its subcommand runs, so a heavy one does not slow the others down. To
add a subcommand, write its module and add one line here.
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
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agl", description="Train AI agents with agl.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, _module, help_text in SUBCOMMANDS:
        subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    known = {name: (module, help_text) for name, module, help_text in SUBCOMMANDS}
    if not argv or argv[0] not in known:
        build_parser().parse_args(argv[:1])  # prints usage: --help, or the error for an unknown command
        return 2
    module_name, help_text = known[argv[0]]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"agl {argv[0]}", description=help_text)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(argv[1:])) or 0)


if __name__ == "__main__":
    sys.exit(main())
