"""Fixtures of the dashboard tests: Debian's chromium driven by Playwright, and where screenshots go.

Playwright's own browser download (``playwright install``) is not used: the tests launch the
system's chromium (``apt-get install chromium``; ``make test-python`` installs it when missing). In
CI (``CI`` set) a missing browser or Playwright fails the tests; elsewhere they are skipped with
the reason, so a laptop without chromium can still run the rest of the suite.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agl_core.client import GrpcStore
from agl_server.process import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("AGL_CHROMIUM", "/usr/bin/chromium")
# Where the screenshots go: the CI workflow keeps this directory as an artifact (docs/dashboard.md).
ARTIFACTS = Path(os.environ.get("AGL_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "dashboard"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"{reason} (CI is set, so the dashboard's browser test must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def screenshots() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless chromium (the system's) under Playwright."""
    if importlib.util.find_spec("playwright") is None:
        _unavailable("Playwright is not installed: pip install -e '.[dev]'")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and shutil.which(CHROMIUM) is None:
        _unavailable(f"no chromium at {CHROMIUM}: apt-get install chromium (or make setup-browser)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def agl_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real agl-server with its HTTP listener on a free port."""
    process = ServerProcess(tmp_path / "agl-data", args=["--http-port", "0"], log_path=tmp_path / "server.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def dashboard(agl_server: ServerProcess) -> AsyncIterator[tuple[GrpcStore, str]]:
    """A gRPC client of ``agl_server`` and the base URL of its HTTP listener (the dashboard's)."""
    store = GrpcStore(agl_server.address)
    try:
        yield store, agl_server.http_url
    finally:
        await store.close()
