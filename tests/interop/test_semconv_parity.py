"""The Go and TypeScript clients name spans and attributes exactly as agl_core.semconv does."""

from __future__ import annotations

import re
from pathlib import Path

from agl_core import semconv

ROOT = Path(__file__).resolve().parents[2]


def _python() -> dict[str, str]:
    return {k: v for k, v in vars(semconv).items() if k.isupper() and isinstance(v, str)}


def test_typescript_semconv_matches_python() -> None:
    text = (ROOT / "clients" / "ts" / "src" / "semconv.ts").read_text()
    ts = dict(re.findall(r'^export const (\w+) = "([^"]*)";', text, re.MULTILINE))
    assert ts == _python()


def test_go_semconv_matches_python() -> None:
    text = (ROOT / "clients" / "go" / "agl" / "semconv.go").read_text()
    go = re.findall(r'^\s*(\w+)\s*=\s*"([^"]*)"', text, re.MULTILINE)
    assert len(go) == len({name for name, _ in go}), "a Go name is defined twice"
    assert sorted(value for _, value in go) == sorted(_python().values())
