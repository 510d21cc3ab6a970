"""Every ```python block of README.md and docs/*.md runs, as a script in a fresh process.

Conventions a block may declare in its first lines (plain comments, so readers see them too):

- ``# doc-test: needs agl-server``: the test starts a real agl-server for the block and sets
  ``AGL_SERVER_ADDRESS`` (the address ``GrpcStore()`` and ``agl`` commands use by default);
- ``# doc-test: needs an OpenAI-compatible endpoint``: the test serves the suite's toy agent,
  critique and edit models (``tests/support/apo_models.py``) and sets ``OPENAI_BASE_URL``,
  ``OPENAI_API_KEY``, ``AGENT_MODEL``, ``AGL_APO_GRADIENT_MODEL`` and ``AGL_APO_EDIT_MODEL``;
- ``# doc-test: skip REASON``: the block is not run; the reason shows in the test report.

Each block runs in an empty temporary directory (it may write ``./data`` and the like) with the
repository on ``PYTHONPATH``, and fails the test on a non-zero exit or when it runs over its time.
bash blocks are not run: they start long-lived daemons, build the Go and TS clients or need GPUs,
and the commands they show are tested where they are built (tests/plugins, tests/interop, ...).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import apo_models
from support.openai_server import OpenAIServer

from agl_server.process import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
NEEDS_SERVER = "# doc-test: needs agl-server"
NEEDS_OPENAI = "# doc-test: needs an OpenAI-compatible endpoint"
SKIP = re.compile(r"^# doc-test: skip (.+)$", re.MULTILINE)
TIMEOUT_S = 180


def blocks() -> Iterator[pytest.ParameterSet]:
    for path in DOCS:
        text = path.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            code = match.group(1)
            skip = SKIP.search(code)
            marks = [pytest.mark.skip(reason=skip.group(1))] if skip else []
            yield pytest.param(code, id=f"{path.relative_to(ROOT)}:{line}", marks=marks)


def test_the_docs_have_python_blocks() -> None:
    assert len(list(blocks())) >= 5  # a broken pattern would otherwise pass with nothing to run


@pytest.mark.parametrize("code", list(blocks()))
def test_code_block_runs(code: str, tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "servers"), env.get("PYTHONPATH", "")])
    env.pop("AGL_TOKEN", None)
    server = None
    if NEEDS_SERVER in code:
        server = ServerProcess(tmp_path / "server-data", args=["--durability", "nosync"]).start()
        env["AGL_SERVER_ADDRESS"] = server.address
    models = None
    if NEEDS_OPENAI in code:
        # The test suite's toy agent, critique and edit models behind a local OpenAI-compatible server.
        models = OpenAIServer(reply=apo_models.reply).start()
        env.update(
            OPENAI_BASE_URL=models.base_url,
            OPENAI_API_KEY="test",
            AGENT_MODEL=apo_models.AGENT_MODEL,
            AGL_APO_GRADIENT_MODEL=apo_models.CRITIQUE_MODEL,
            AGL_APO_EDIT_MODEL=apo_models.EDIT_MODEL,
        )
    script = tmp_path / "block.py"
    script.write_text(code)
    work = tmp_path / "work"
    work.mkdir()
    try:
        # A block's tempfile.mkdtemp() (a reader's scratch store) lands in a directory removed after the
        # block. Not under tmp_path: Ray puts its sockets under TMPDIR, and a socket's path must stay
        # within 107 bytes.
        with tempfile.TemporaryDirectory(prefix="agl-doc-", ignore_cleanup_errors=True) as scratch:
            done = subprocess.run(
                [sys.executable, str(script)],
                cwd=work,
                env={**env, "TMPDIR": scratch},
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
            )
    finally:
        if server is not None:
            server.close()
        if models is not None:
            models.stop()
    assert done.returncode == 0, f"the block exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
