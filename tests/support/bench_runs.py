"""Running a benchmark of bench/ the way its smoke tests do: as a script, against the checkout."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, args: list[str], out: str, timeout: float) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the bench with ``--out out``; what it did and where its result file goes (removed first)."""
    path = ROOT / "bench" / "results" / f"{out}.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "servers"), env.get("PYTHONPATH", "")])
    path.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, f"bench/{script}", *args, "--out", out],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done, path


def run_bench(script: str, args: list[str], out: str, timeout: float) -> dict[str, Any]:
    """Run ``bench/<script> *args --out <out>`` and return the result file it saved (asserting that
    it exited 0 and printed its table). ``out`` should end in ``_quick`` (ignored by git)."""
    done, path = _run(script, args, out, timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| measure" in done.stdout  # the table was printed
    saved: dict[str, Any] = json.loads(path.read_text())
    return saved


def rows_by_name(saved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The saved rows by their name (without the indentation of sub-rows)."""
    return {row["name"].strip(): row for row in saved["rows"]}


def run_bench_failing(script: str, args: list[str], out: str, timeout: float) -> str:
    """Run ``bench/<script> *args --out <out>`` expecting it to fail; return its stderr (asserting
    that it exited non-zero and saved no result)."""
    done, path = _run(script, args, out, timeout)
    assert done.returncode != 0, done.stdout[-3000:]
    assert not path.exists()
    return done.stderr


def load_bench_module(name: str) -> ModuleType:
    """``bench/<name>.py`` imported as a module of that name (bench/ is not a package); for benches'
    modules that import nothing else of bench/."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
