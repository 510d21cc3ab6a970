"""The Go and TypeScript clients name spans and attributes as agl_core.semconv does.

Every name the clients define must exist in Python with the same value; Python may have more
(names only the Python tracer writes), so adding one there breaks nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

from agl_core import semconv

ROOT = Path(__file__).resolve().parents[2]
# What the Go and TS runner layers write themselves; these must be there.
CORE = {
    "ROLLOUT_ID",
    "ATTEMPT_ID",
    "SPAN_REWARD",
    "REWARD_VALUE",
    "REWARD_NAME",
    "REWARD_VALUES_PREFIX",
    "SPAN_MESSAGE",
    "MESSAGE_BODY",
    "SPAN_EXCEPTION",
    "EXCEPTION_TYPE",
    "EXCEPTION_MESSAGE",
    "EXCEPTION_STACKTRACE",
    "SPAN_ROLLOUT",
    "OPERATION",
    "AGENT_NAME",
    "TOOL_NAME",
}


def _python() -> dict[str, str]:
    return {k: v for k, v in vars(semconv).items() if k.isupper() and isinstance(v, str)}


def test_typescript_semconv_matches_python() -> None:
    text = (ROOT / "clients" / "ts" / "src" / "semconv.ts").read_text()
    ts = dict(re.findall(r'^export const (\w+) = "([^"]*)";', text, re.MULTILINE))
    python = _python()
    assert {k: v for k, v in ts.items() if python.get(k) != v} == {}, "names missing or different in Python"
    assert CORE <= ts.keys()


def go_to_python_name(name: str) -> str:
    """The Python name of a Go constant: ``AttrLLMPromptTokenIDs`` -> ``LLM_PROMPT_TOKEN_IDS``
    (Go prefixes attributes with ``Attr`` and writes acronyms in capitals)."""
    name = name.removeprefix("Attr").replace("GenAI", "GenAi").replace("IDs", "Ids")
    return "_".join(re.findall(r"[A-Z]+(?=[A-Z][a-z]|$)|[A-Z][a-z]*|\d+", name)).upper()


def test_go_to_python_names() -> None:
    assert go_to_python_name("AttrLLMPromptTokenIDs") == "LLM_PROMPT_TOKEN_IDS"
    assert go_to_python_name("GenAIOperationTextCompletion") == "GEN_AI_OPERATION_TEXT_COMPLETION"
    assert go_to_python_name("AttrObjectJSON") == "OBJECT_JSON"
    assert go_to_python_name("AttrRolloutID") == "ROLLOUT_ID"


def test_go_semconv_matches_python() -> None:
    text = (ROOT / "clients" / "go" / "agl" / "semconv.go").read_text()
    go = re.findall(r'^\s*(\w+)\s*=\s*"([^"]*)"', text, re.MULTILINE)
    assert len(go) == len({name for name, _ in go}), "a Go name is defined twice"
    python = _python()
    # Name and value: a Go constant with a right value under the wrong name (e.g. the reward's
    # name attribute called AttrRewardValue) is as wrong as a wrong value.
    assert {name: value for name, value in go if python.get(go_to_python_name(name)) != value} == {}, (
        "Go names missing in Python, or with another value there"
    )
    assert CORE <= {go_to_python_name(name) for name, _ in go}
