"""`make demo` runs examples/quickstart.py: it must finish and report the best template it found."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart.py"


def test_the_quickstart_trains_and_reports_its_best_template() -> None:
    done = subprocess.run([sys.executable, str(QUICKSTART)], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "best template: '{question} Reply with only the number.'" in done.stdout, done.stdout[-2000:]
    assert "validation reward 1.00" in done.stdout, done.stdout[-2000:]
