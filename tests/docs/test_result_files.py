"""Every benchmark result file that README.md or docs/*.md names is in bench/results.

The docs quote measured figures with the files they came from (`store_bench_ack_dec7b_{1,2,3}.json`);
a figure whose file is gone, misspelt or never committed cannot be checked, so a name that matches
no file fails here. A name is a backticked token ending in ``.json``, bare or under
``bench/results/``, written with the shell's brace forms the docs use: ``{a,b}``, ``{1..5}``,
``{b1..b3}`` (a range with a prefix), and ``*`` for a glob that must match at least one file.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOKEN = re.compile(r"`((?:bench/results/)?[^`\s/]+\.json)`")
BRACES = re.compile(r"\{([^{}]*)\}")
RANGE = re.compile(r"([A-Za-z_]*)(\d+)\.\.\1(\d+)")
# Backticked .json names in the docs that are not benchmark results.
NOT_RESULTS = {
    "agl_run.json",  # the trainer's run record, written beside its checkpoints (README.md)
}


def expand(pattern: str) -> list[str]:
    """The names a brace pattern stands for, in order; globs are left as they are."""
    match = BRACES.search(pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    names = []
    for item in match.group(1).split(","):
        span = RANGE.fullmatch(item)
        options = [f"{span.group(1)}{i}" for i in range(int(span.group(2)), int(span.group(3)) + 1)] if span else [item]
        for option in options:
            names.extend(expand(head + option + tail))
    return names


def unmatched(text: str, present: set[str]) -> list[str]:
    """The result names in ``text`` that no file in ``present`` answers."""
    missing = []
    for token in TOKEN.findall(text):
        for name in expand(token.removeprefix("bench/results/")):
            if name in NOT_RESULTS:
                continue
            found = fnmatch.filter(present, name) if "*" in name else name in present
            if not found:
                missing.append(name)
    return missing


def test_expand_reads_the_brace_forms_the_docs_use() -> None:
    assert expand("a_{1..3}.json") == ["a_1.json", "a_2.json", "a_3.json"]
    assert expand("a_{off,on}_{1..2}.json") == ["a_off_1.json", "a_off_2.json", "a_on_1.json", "a_on_2.json"]
    assert expand("a_{1..2,b1..b2}.json") == ["a_1.json", "a_2.json", "a_b1.json", "a_b2.json"]
    assert expand("plain.json") == ["plain.json"]


def test_a_name_with_no_file_is_reported() -> None:
    text = "see `run_{1..3}.json`, `bench/results/other_*.json` and `agl_run.json`"
    assert unmatched(text, {"run_1.json", "run_3.json", "other_x.json"}) == ["run_2.json"]
    assert unmatched(text, {"run_1.json", "run_2.json", "run_3.json"}) == ["other_*.json"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_result_file_a_doc_names_is_committed(doc: Path) -> None:
    present = {path.name for path in RESULTS.iterdir()}
    missing = unmatched(doc.read_text(), present)
    assert not missing, f"{doc.relative_to(ROOT)} names result files that are not in bench/results: {missing}"
