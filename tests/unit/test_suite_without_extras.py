"""The suite on a ``.[dev]`` install without the verl extra: tests/verl is skipped, with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_verl_tests_skip_with_a_reason_without_the_extra(tmp_path: Path) -> None:
    # A plugin loaded before any conftest makes torch and verl unimportable, as on a dev-only install.
    (tmp_path / "hide_verl.py").write_text("import sys\nsys.modules['torch'] = None\nsys.modules['verl'] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "hide_verl", "-q", "-rs", "-p", "no:cacheprovider", "tests/verl"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # 5: pytest's "no tests collected", as this directory alone has nothing but skipped modules.
    assert result.returncode in (0, 5), result.stdout + result.stderr
    modules = sorted(p.name for p in (ROOT / "tests" / "verl").glob("test_*.py"))
    assert f"{len(modules)} skipped" in result.stdout, result.stdout
    assert "the verl extra is not installed (no torch, verl)" in result.stdout
    assert "error" not in result.stdout.lower(), result.stdout
