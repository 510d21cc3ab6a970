"""``python -m agl_plugins.algorithms.apo history`` on a directory that holds no store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_history_of_a_missing_data_dir_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-run"
    done = subprocess.run(
        [sys.executable, "-m", "agl_plugins.algorithms.apo", "history", "--data-dir", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"{str(missing)!r} holds no agl store (no data.mdb)" in done.stderr
    assert not missing.exists()  # no empty store left behind
