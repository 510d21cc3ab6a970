#!/usr/bin/env python3
"""What encoding a span batch costs agl's TypeScript client: protobuf-es's ``toBinary`` of one
10-span IngestSpansRequest, for the batch ``bench/go_codec_bench.py`` times in Go (text attributes
and two token-id arrays per span, as LLM-call spans carry) and for each half of it.

Builds the client (``npm run build``) and runs ``clients/ts/bench/codec.ts``; microseconds per
batch and the batch's bytes. The client encodes each batch once, on the agent's thread, when it
sends it.

    python bench/ts_codec_bench.py [--batches 20000] [--out ts_codec_bench]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Report, saved_as

TS = ROOT / "clients" / "ts"
ROWS = {
    "llm": "LLM-call spans: text and token ids (Go's batch)",
    "text": "text attributes only (five per span)",
    "token_ids": "token ids only (42 and 12 per span)",
    "none": "no attributes",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20_000, help="batches encoded per shape (default 20000)")
    parser.add_argument("--out", default="ts_codec_bench", help="result file name under bench/results")
    args = parser.parse_args()
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise SystemExit("Node.js (node, npm) is not on PATH; install Node.js 20+ and run `make setup-ts`")
    if not (TS / "node_modules").is_dir():
        raise SystemExit(f"{TS / 'node_modules'} is missing: run `make setup-ts` first")
    subprocess.run(["npm", "run", "--silent", "build"], cwd=TS, check=True)
    done = subprocess.run(
        ["node", "dist/bench/codec.js", "--batches", str(args.batches)],
        cwd=TS,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the TS codec bench failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    missing = sorted(set(ROWS) - set(result["results"]))
    if missing:
        raise SystemExit(f"the TS codec bench gave no figure for {missing}")
    report = Report("TS client: encoding a 10-span batch", context={"batches": args.batches, "node": result["node"]})
    for name, label in ROWS.items():
        figures = result["results"][name]
        report.add(f"toBinary: {label}", figures["us_per_batch"], "us/batch", note=f"{figures['bytes']} bytes")
    print(report.table())
    print(f"\nsaved {saved_as(report.save(args.out))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
