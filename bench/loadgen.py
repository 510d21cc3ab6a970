"""The Go load generator (clients/go/cmd/agl-loadgen), built and run from the benchmarks.

Its workers are goroutines speaking the protocol through the raw generated stubs, so the client
costs little next to the server: fleet_bench runs its fleet scenarios with it, and store_bench its
span-ack scenario, which shows whether the Python client's own CPU bounds the ack latency."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import ROOT

GO_MODULE = ROOT / "clients" / "go"
BIN_DIR = ROOT / "bench" / ".bin"  # ignored by git


def build_loadgen(out_dir: Path = BIN_DIR) -> Path:
    return build_go_command("agl-loadgen", out_dir)


def build_go_command(name: str, out_dir: Path = BIN_DIR) -> Path:
    """``clients/go/cmd/<name>``, built into ``out_dir``."""
    go = shutil.which("go")
    if go is None:
        raise SystemExit(f"the Go toolchain (go) is not on PATH; install Go 1.25+ to build {name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / name
    subprocess.run([go, "build", "-o", str(binary), f"./cmd/{name}"], cwd=GO_MODULE, check=True, timeout=600)
    return binary


def loadgen_command(binary: Path, address: str, options: dict[str, Any]) -> list[str]:
    """``agl-loadgen -server address -json -name=value ...`` (booleans as true/false)."""
    command = [str(binary), "-server", address, "-json"]
    for name, value in options.items():
        command.append(f"-{name}={str(value).lower() if isinstance(value, bool) else value}")
    return command


def result_of(stdout: str) -> dict[str, Any]:
    """The JSON object agl-loadgen prints last on stdout (progress goes to stderr)."""
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def write_span_batches(path: Path, batches: Sequence[bytes]) -> Path:
    """Serialized IngestSpansRequest messages in the file span-ack reads with -batches."""
    path.write_text(json.dumps([base64.b64encode(batch).decode() for batch in batches]))
    return path


# How agl-loadgen's span writers serialize a batch: "each" (marshalled for every send, as a client
# building its spans would) or "once" (its bytes kept, new span ids written in: 77-112 us of the
# writers' CPU per 10-span batch against 125-132 for "each", left to the server they share with).
ENCODINGS = ("each", "once")


SPAN_ACK_WARM_UP_S = 1.0  # the writers' warm-up, left out of what they measure


def run_span_ack(
    binary: Path,
    address: str,
    batches: Path,
    writers: int,
    seconds: float,
    latencies: Path | None = None,
    encode: str = "each",
) -> dict[str, Any]:
    """One span-ack run: ``writers`` closed-loop IngestSpans writers for ``seconds`` after a second
    of warm-up, on one connection (as the Python writers of store_bench share one). ``latencies``:
    where agl-loadgen writes each batch of the window (bench/ack_timeline.py reads it); ``encode``:
    one of :data:`ENCODINGS`."""
    options: dict[str, Any] = {
        "scenario": "span-ack",
        "writers": writers,
        "conns": 1,
        "batches": batches,
        "duration": f"{seconds}s",
        "warmup": f"{SPAN_ACK_WARM_UP_S:g}s",
        "encode": encode,
    }
    if latencies is not None:
        options["latencies"] = latencies
    command = loadgen_command(binary, address, options)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, check=False)
    if done.returncode != 0:
        raise SystemExit(f"agl-loadgen failed (exit {done.returncode}): {' '.join(command)}\n{done.stderr[-2000:]}")
    return result_of(done.stdout)
