"""bench/span_query_bench.py --quick against a real agl-server: every way of reading a batch's spans
returns every span (the bench asserts it) and each gets its rows. A smoke test of the benchmark;
the figures are read from its table, never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = "span_query_bench_smoke_quick"  # *_quick.json is ignored by git


def test_span_query_bench_quick_reads_every_span_every_way() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "servers"), env.get("PYTHONPATH", "")])
    path = ROOT / "bench" / "results" / f"{OUT}.json"
    path.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "bench/span_query_bench.py", "--quick", "--out", OUT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {row["name"].strip(): row for row in json.loads(path.read_text())["rows"]}
    for way in ("query_spans per rollout, one at a time", "query_spans per rollout, all at once",
                "query_spans_of_rollouts (rollout_ids)"):  # fmt: skip
        batch = rows[f"{way}: the batch"]
        assert batch["unit"] == "ms" and batch["value"] > 0, way
        assert rows[f"server CPU per rollout read ({way.split(' (')[0]})"]["unit"] == "ms"
