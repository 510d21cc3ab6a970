#!/usr/bin/env python3
"""What encoding a span batch costs agl's Go client: protobuf's reflection against the generated
code its codec uses (clients/go/internal/wirecodec), per 10-span batch of LLM-call spans (text
attributes and two token-id arrays each), marshalled and unmarshalled, and the bytes each way
leaves for the garbage collector (the codec marshals into gRPC's pooled buffers, as gRPC's own
codec does; a buffer of its own per batch made 12.8 KB of garbage for every batch a writer sent).

Runs the Go benchmarks of clients/go/internal/wirecodec (``go test -bench -benchmem``) and saves
their table; microseconds and bytes allocated per batch.

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
    "MarshalGrpcCodec": "marshal: gRPC's codec (reflection, pooled buffer)",
    "MarshalCodec": "marshal: the client's codec (generated code, pooled buffer)",
    "UnmarshalProtobuf": "unmarshal: protobuf's reflection (proto.Unmarshal)",
    "UnmarshalCodec": "unmarshal: the client's codec (generated UnmarshalVT)",
}
LINE = re.compile(r"^Benchmark(\w+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op\s+(\d+) B/op")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchtime", default="2s", help="go test -benchtime (a duration, or NNx for N runs)")
    parser.add_argument("--out", default="go_codec_bench", help="result file name under bench/results")
    args = parser.parse_args()
    go = shutil.which("go")
    if go is None:
        raise SystemExit("the Go toolchain (go) is not on PATH; install Go 1.25+")
    command = [go, "test", "-run", "^$", "-bench", ".", "-benchtime", args.benchtime, "-benchmem"]
    command.append("./internal/wirecodec")
    done = subprocess.run(command, cwd=GO_MODULE, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"go test -bench failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    matches = [m for m in map(LINE.match, done.stdout.splitlines()) if m]
    timings = {m.group(1): float(m.group(2)) / 1000 for m in matches}
    garbage = {m.group(1): int(m.group(3)) for m in matches}
    missing = sorted(set(ROWS) - set(timings))
    if missing:
        raise SystemExit(f"go test -bench gave no figure for {missing}:\n{done.stdout[-2000:]}")
    report = Report("Go client: encoding a 10-span batch", context={"benchtime": args.benchtime})
    for name, label in ROWS.items():
        report.add(label, timings[name], "us/batch")
        report.add(f"  {label.split(' (')[0]}: allocated", garbage[name], "bytes/batch")
    print(report.table())
    print(f"\nsaved {saved_as(report.save(args.out))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
