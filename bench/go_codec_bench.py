#!/usr/bin/env python3
"""What encoding a span batch costs agl's Go client: protobuf's reflection against the generated
code its codec uses (clients/go/internal/wirecodec), per 10-span batch of LLM-call spans (text
attributes and two token-id arrays each), marshalled and unmarshalled.

Runs the Go benchmarks of clients/go/internal/wirecodec (``go test -bench``) and saves their
table; microseconds per batch.

    python bench/go_codec_bench.py [--benchtime 2s] [--out go_codec_bench]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, saved_as
from loadgen import GO_MODULE

ROWS = {
    "MarshalProtobuf": "marshal: protobuf's reflection (proto.Marshal)",
    "MarshalCodec": "marshal: the client's codec (generated MarshalVT)",
    "UnmarshalProtobuf": "unmarshal: protobuf's reflection (proto.Unmarshal)",
    "UnmarshalCodec": "unmarshal: the client's codec (generated UnmarshalVT)",
}
LINE = re.compile(r"^Benchmark(\w+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchtime", default="2s", help="go test -benchtime (a duration, or NNx for N runs)")
    parser.add_argument("--out", default="go_codec_bench", help="result file name under bench/results")
    args = parser.parse_args()
    go = shutil.which("go")
    if go is None:
        raise SystemExit("the Go toolchain (go) is not on PATH; install Go 1.25+")
    command = [go, "test", "-run", "^$", "-bench", ".", "-benchtime", args.benchtime, "./internal/wirecodec"]
    done = subprocess.run(command, cwd=GO_MODULE, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"go test -bench failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    timings = {m.group(1): float(m.group(2)) / 1000 for m in map(LINE.match, done.stdout.splitlines()) if m}
    missing = sorted(set(ROWS) - set(timings))
    if missing:
        raise SystemExit(f"go test -bench gave no figure for {missing}:\n{done.stdout[-2000:]}")
    report = Report("Go client: encoding a 10-span batch", context={"benchtime": args.benchtime})
    for name, label in ROWS.items():
        report.add(label, timings[name], "us/batch")
    print(report.table())
    print(f"\nsaved {saved_as(report.save(args.out))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
