"""Adding a command is one line: a group made of ``(word, target, help)`` entries builds a parser whose
leaves get the connection options and ``--json``, and turns a CliError into one line and its code."""

from __future__ import annotations

import argparse

import pytest

from agl_core.cli.command import Command, group, single
from agl_core.cli.connect import CliError


def _add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")


def _run(args: argparse.Namespace) -> int:
    """Greets NAME."""
    if args.name == "nobody":
        raise CliError("nobody to greet", 3)
    print(f"hello {args.name} via {args.server} json={args.json}")
    return 0


HELLO = Command(_add, _run)
OFFLINE = Command(_add, lambda args: print(f"offline {args.name} {hasattr(args, 'server')}") or 0, connects=False)


def test_a_group_built_from_one_line_per_leaf(capsys: pytest.CaptureFixture[str]) -> None:
    add_arguments, run = group(
        [
            ("hello", "test_cli_registration:HELLO", "greet someone"),
            ("offline", "test_cli_registration:OFFLINE", "a leaf that does not connect"),
        ]
    )
    parser = argparse.ArgumentParser(prog="agl sample")
    add_arguments(parser)

    assert run(parser.parse_args(["hello", "ada", "--server", "h:1", "--json"])) == 0
    assert capsys.readouterr().out == "hello ada via h:1 json=True\n"
    assert run(parser.parse_args(["offline", "bob"])) == 0
    assert capsys.readouterr().out == "offline bob False\n"  # no connection options on it

    assert run(parser.parse_args(["hello", "nobody"])) == 3
    assert capsys.readouterr().err == "agl: nobody to greet\n"

    with pytest.raises(SystemExit):
        parser.parse_args(["offline", "bob", "--server", "h:1"])


def test_a_single_command_gets_the_same_options_and_its_help() -> None:
    add_arguments, run = single(HELLO)
    parser = argparse.ArgumentParser(prog="agl hello", description="greet someone")
    add_arguments(parser)
    assert "Greets NAME." in parser.format_help() and "--token-file" in parser.format_help()
    assert run(parser.parse_args(["ada"])) == 0
