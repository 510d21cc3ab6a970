"""The ray strategy without Ray installed, and how it is found: the plugin loads without Ray
(registered by import path), and building the strategy says which extra to install. Run in a
fresh interpreter where ``import ray`` fails, whether or not Ray is installed here."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

# Python treats a None entry in sys.modules as "this module cannot be imported": the interpreter
# behaves as if Ray were not installed, and none of agl's code is replaced.
BLOCK_RAY = "import sys; sys.modules['ray'] = None\n"
ROOT = Path(__file__).parents[2]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK_RAY + code], capture_output=True, text=True, timeout=120)


def test_the_strategy_without_ray_says_which_extra_to_install() -> None:
    code = """
from agl_core.plugins import get_plugin_manager
from agl_core.trainer import Trainer
from agl_plugins.strategies.on_ray.cluster import MissingRayError

pm = get_plugin_manager()
for spec in ("ray", {"type": "ray", "address": "auto", "n_runners": 2}):
    try:
        Trainer(strategy=spec, plugin_manager=pm)
    except MissingRayError as exc:
        print("ERROR:", exc)
    else:
        print("built")
"""
    run = run_python(code)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("ERROR:") for line in lines), run.stdout
    assert all("the ray strategy needs Ray" in line and "pip install 'agl[ray]'" in line for line in lines)


def test_the_plugin_loads_without_ray_and_is_declared() -> None:
    # Listing plugins imports no Ray: the strategy is registered by path.
    run = run_python(
        "from agl_plugins.strategies import on_ray\n"
        "from agl_core.plugins import get_plugin_manager\n"
        "pm = get_plugin_manager(load_entrypoints=False, plugins=[on_ray])\n"
        "print(sorted(pm.provided('execution_strategies')))\n"
        "print('ray' in sys.modules and sys.modules['ray'] is not None)\n"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["['ray']", "False"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["agl"]["strategy-ray"] == "agl_plugins.strategies.on_ray"
    assert any(r.startswith("ray[default]") for r in project["optional-dependencies"]["ray"])
