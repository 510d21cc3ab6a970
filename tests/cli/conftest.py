"""Fixtures of the ``agl`` command tests: a real agl-server holding real data (tests/support/cli_data.py),
and ``agl(*args)`` to run a command in this process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from support.cli_data import Held, populate

from agl_core.cli import main
from agl_server.process import ServerProcess


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Held]:
    """One populated agl-server for the read-only command tests of a module."""
    root = tmp_path_factory.mktemp("agl-cli")
    process = ServerProcess(root / "data", log_path=root / "server.log").start()
    try:
        yield asyncio.run(populate(process.address))
    finally:
        process.stop()


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def agl(capsys: pytest.CaptureFixture[str]) -> Any:
    """``agl(*args)`` runs the command in this process and returns its exit code and output."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse usage errors
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
