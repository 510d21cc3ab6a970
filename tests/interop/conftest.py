"""Fixtures of the mixed-language tests: the example agents of the Go and TypeScript clients,
built once per session, and the runner processes of a test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_processes import Runners, build_go_agent, build_ts_agent


@pytest.fixture(scope="session")
def go_agent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_go_agent(tmp_path_factory.mktemp("go"))


@pytest.fixture(scope="session")
def ts_agent() -> Path:
    return build_ts_agent()


@pytest.fixture
def runners(tmp_path: Path) -> Iterator[Runners]:
    started = Runners(tmp_path)
    try:
        yield started
    finally:
        started.kill_all()
