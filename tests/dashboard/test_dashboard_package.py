"""A wheel of agl carries every dashboard asset: each file under static/ matches pyproject's package data."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

from agl_server.http.dashboard import STATIC

ROOT = Path(__file__).resolve().parents[2]


def test_every_static_asset_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["agl_server.http.dashboard"]
    assets = [p.relative_to(STATIC.parent).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert {"static/index.html", "static/js/main.js", "static/vendor/uPlot.iife.min.js"} <= set(assets)
    missing = [a for a in assets if not any(fnmatch.fnmatch(a, pattern) for pattern in patterns)]
    assert missing == [], f"add these to [tool.setuptools.package-data] in pyproject.toml: {missing}"
