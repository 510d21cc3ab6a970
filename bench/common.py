"""Shared pieces of the benchmarks: payloads, percentiles, result tables and JSON files, and the run
of a bench's measures in a scratch directory."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
# Run as a script from anywhere. Where this checkout is on the path already it stays where it is: a
# bench may have put a build of agl_core before it (ingest_cpu_bench.py --compiled).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agl_core import semconv  # noqa: E402
from agl_core.types import new_span  # noqa: E402


def llm_call_span(rollout_id: str, attempt_id: str, i: int = 0) -> Any:
    """A realistic ~1 KB span of one LLM call: GenAI attributes, request/response JSON, token ids."""
    request = json.dumps(
        {
            "model": "qwen2.5-0.5b-instruct",
            "messages": [
                {"role": "system", "content": "You are a careful assistant that answers math questions."},
                {"role": "user", "content": f"Question {i}: what is 17 * 23 + 5? Think step by step."},
            ],
            "temperature": 0.7,
            "max_tokens": 256,
        }
    )
    answer = {"role": "assistant", "content": "17*23=391; +5=396."}
    response = json.dumps({"id": f"chatcmpl-{i}", "choices": [{"index": 0, "message": answer}]})
    return new_span(
        "chat qwen2.5-0.5b-instruct",
        rollout_id=rollout_id,
        attempt_id=attempt_id,
        attributes={
            semconv.GEN_AI_OPERATION: "chat",
            semconv.GEN_AI_SYSTEM: "openai",
            semconv.GEN_AI_REQUEST_MODEL: "qwen2.5-0.5b-instruct",
            semconv.GEN_AI_RESPONSE_ID: f"chatcmpl-{i}",
            semconv.GEN_AI_INPUT_TOKENS: 42,
            semconv.GEN_AI_OUTPUT_TOKENS: 12,
            semconv.LLM_REQUEST: request,
            semconv.LLM_RESPONSE: response,
            semconv.LLM_PROMPT_TOKEN_IDS: list(range(1000, 1042)),
            semconv.LLM_RESPONSE_TOKEN_IDS: list(range(2000, 2012)),
        },
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Row:
    name: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Report:
    title: str
    rows: list[Row] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)

    def add(
        self, name: str, value: float, unit: str, *, target: str = "", met: bool | None = None, note: str = ""
    ) -> None:
        row = Row(name, value, unit, target, met, note)
        self.rows.append(row)
        print(f"  {_format_row(row)}", flush=True)

    def table(self) -> str:
        header = f"| {'measure':<52} | {'value':>12} | {'unit':<10} | {'target':<16} | met | note"
        lines = [header, "|" + "-" * 54 + "|" + "-" * 14 + "|" + "-" * 12 + "|" + "-" * 18 + "|-----|-----"]
        for row in self.rows:
            met = "" if row.met is None else ("yes" if row.met else "NO")
            value = _number(row.value)
            lines.append(f"| {row.name:<52} | {value:>12} | {row.unit:<10} | {row.target:<16} | {met:<3} | {row.note}")
        return "\n".join(lines)

    def save(self, name: str) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{name}.json"
        payload = {
            "title": self.title,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "context": self.context,
            # Overrides its servers inherited: interpreter settings (agl_server.tuning), durability and
            # the store's compiled paths (which span loop and edge check ran).
            "server_settings": {
                k: v for k, v in sorted(os.environ.items()) if k.startswith("AGL_SERVER_") or k in SETTINGS
            },
            "rows": [asdict(row) for row in self.rows],
        }
        path.write_text(json.dumps(payload, indent=2) + "\n")
        return path


# The environment's settings of agl-server and its store recorded with each result (besides AGL_SERVER_*).
SETTINGS = ("AGL_DURABILITY", "AGL_SPAN_LOOP", "AGL_EDGE_CHECK")


def saved_as(path: Path) -> str:
    """``path`` for the "saved ..." line: relative to the repository where it lies inside it (``--out``
    takes a name under bench/results, but an absolute one saves where it says)."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def run_and_save(
    report: Report, out: str, measure: Callable[[str], Awaitable[None]], prefix: str = "agl-bench-"
) -> int:
    """A bench's main() after its options: ``measure(workdir)`` filling ``report``, in a directory
    removed afterwards, then the table printed and saved as ``out`` (see :meth:`Report.save`).
    Returns the exit status."""
    with tempfile.TemporaryDirectory(prefix=prefix) as workdir:
        asyncio.run(measure(workdir))
    print()
    print(report.table())
    print(f"\nsaved {saved_as(report.save(out))}")
    return 0


def _number(value: float) -> str:
    if value != value:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _format_row(row: Row) -> str:
    met = "" if row.met is None else ("  [met]" if row.met else "  [MISSED]")
    target = f" (target {row.target})" if row.target else ""
    return f"{row.name}: {_number(row.value)} {row.unit}{target}{met}"
