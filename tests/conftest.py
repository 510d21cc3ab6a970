"""Shared fixtures: real agl-server processes on free loopback ports, real LMDB in temp dirs."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support.openai_server import OpenAIServer

from agl_core.client import GrpcStore
from agl_core.store import LightningStore, LmdbStore
from agl_server.process import ServerProcess

# A test run started in the background of a non-interactive shell (`make test &`, `nohup`, a
# script's `&`) inherits SIGINT ignored, and an ignored signal stays ignored in every process it
# starts: the tests that press Ctrl-C, on this process (asyncio.run turns it into
# KeyboardInterrupt only where Python's own handler is installed) or on a CLI they start, would
# wait for their deadline. Python's handler puts SIGINT back as at a terminal, for this process and,
# since handlers are reset on exec, for every child.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "agl-data"


@pytest.fixture
def server(data_dir: Path) -> Iterator[ServerProcess]:
    """A real agl-server process on a free port, over a fresh data directory."""
    process = ServerProcess(data_dir, log_path=data_dir.parent / "server.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(params=["lmdb", "grpc"])
async def store(request: pytest.FixtureRequest, data_dir: Path) -> AsyncIterator[LightningStore]:
    """The same store API two ways: LmdbStore in-process, and GrpcStore against agl-server."""
    if request.param == "lmdb":
        embedded = LmdbStore(data_dir)
        try:
            yield embedded
        finally:
            await embedded.close()
    else:
        process = ServerProcess(data_dir, log_path=data_dir.parent / "server.log").start()
        client = GrpcStore(process.address)
        try:
            yield client
        finally:
            await client.close()
            process.stop()


@pytest.fixture
async def grpc_store(server: ServerProcess) -> AsyncIterator[GrpcStore]:
    """A GrpcStore client of the ``server`` fixture's agl-server."""
    store = GrpcStore(server.address)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A deterministic OpenAI-compatible server returning token ids (see tests/support/openai_server.py)."""
    with OpenAIServer() as llm:
        yield llm


# --- the end of the run -----------------------------------------------------------------------------

_SESSIONS: list[pytest.Session] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    _SESSIONS.append(session)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the process once pytest has reported everything, skipping interpreter finalization.

    This process runs grpc (sync and aio), Ray, torch and uvloop. During finalization grpc's
    completion-queue threads may still be polling channels that only the garbage collector would
    have closed, and taking the GIL back there can crash the interpreter (the race grpc's pull
    request #18456 describes). Here pytest segfaulted once after printing "663 passed, 1 skipped",
    so `make test` failed although every test had passed. By now the report and every file a test
    writes (screenshots, results) are written; the exit status is pytest's own.
    ``AGL_TESTS_FINALIZE=1`` keeps the normal interpreter exit (to look for such a crash).
    """
    if not _SESSIONS or os.environ.get("AGL_TESTS_FINALIZE") == "1":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(_SESSIONS[-1].exitstatus))
