"""The ``$ agl ...`` lines of docs/cli.md's console blocks are commands the real parser accepts.

tests/docs/test_code_blocks.py runs the doc's ```python blocks but no shell blocks; this keeps
the shown commands from drifting from the options the code has (an option renamed in the code
and not in the doc fails here). What the commands print is tested in test_cli_inspect.py.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from pathlib import Path

import pytest

from agl_core.cli import SUBCOMMANDS

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
CONSOLE = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)


def commands() -> list[list[str]]:
    found = []
    for block in CONSOLE.findall(DOC.read_text()):
        for line in block.splitlines():
            if line.startswith("$ agl "):
                found.append(shlex.split(line[len("$ agl ") :]))
    return found


def test_the_doc_shows_every_new_command() -> None:
    shown = {tuple(words[:2]) if words[0] in ("rollouts", "resources") else (words[0],) for words in commands()}
    for expected in ("list", "show", "spans", "watch", "cancel"):
        assert ("rollouts", expected) in shown
    for expected in ("list", "show", "diff"):
        assert ("resources", expected) in shown
    assert {("workers",), ("stats",), ("export",), ("--version",)} <= shown


@pytest.mark.parametrize("words", [w for w in commands() if w[0] != "--version"], ids=" ".join)
def test_a_shown_command_parses(words: list[str]) -> None:
    module = {name: target for name, target, _ in SUBCOMMANDS}[words[0]]
    parser = argparse.ArgumentParser(prog=f"agl {words[0]}", exit_on_error=False)
    importlib.import_module(module).add_arguments(parser)
    parser.parse_args(words[1:])  # raises SystemExit (with usage on stderr) on an unknown option
