"""The verl algorithm without the ``verl`` extra: ``agl plugins`` still lists it, and building it
says what to install (run in a fresh interpreter where ``import verl`` fails, whether or not the
extra is installed here)."""

from __future__ import annotations

import subprocess
import sys

# Python treats a None entry in sys.modules as "this module cannot be imported".
BLOCK_VERL = "import sys; sys.modules['verl'] = None\n"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK_VERL + code], capture_output=True, text=True, timeout=120)


def test_agl_plugins_lists_verl_without_the_extra() -> None:
    run = run_python("from agl_core.cli import main; sys.exit(main(['plugins']))")
    assert run.returncode == 0, run.stderr
    assert "algorithm-verl" in run.stdout and "algorithms: verl" in run.stdout
    assert "failed" not in run.stdout.lower()


def test_trainer_with_verl_without_the_extra_says_what_to_install() -> None:
    code = """
from agl_core.trainer import Trainer
from agl_plugins.verl.algorithm import MissingExtraError
for spec in ("verl", {"type": "verl", "config": {}}):
    try:
        Trainer(algorithm=spec)
    except MissingExtraError as exc:
        print("ERROR:", exc)
    else:
        print("built")
"""
    run = run_python(code)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("ERROR:") for line in lines), run.stdout
    assert "pip install 'agl[verl]'" in lines[0] and "verl is missing" in lines[0]
