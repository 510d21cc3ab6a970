#!/usr/bin/env python3
"""When the slow acks came: the batches an agl-loadgen span-ack run acked (``-latencies FILE``:
writer, send time in unix ns, latency in ns per line), in steps of the measured window.

A p99 says how slow the slowest batches were, not whether they were spread over the run (the
server's steady cost per batch) or bunched into a few stretches in which every writer was slow
(something the server did for a while). Bunched, batches per second fall in those steps while
the latency of all writers rises. That is how a stretch of span-id filter growth was found behind
eight writers' p99 (docs/server.md, "Work that cannot stall the others").

    python bench/ack_timeline.py FILE [--step 0.5]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Step:
    start_s: float  # from the first batch sent
    batches: int
    batches_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    writers: int  # writers with a batch of their own in the step


def read_samples(path: Path) -> list[tuple[int, int, int]]:
    """(writer, sent ns, latency ns) per acked batch, by send time."""
    samples = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if len(fields) != 3:
            raise ValueError(f"{path}:{number}: expected 'writer sent_ns latency_ns', got {line!r}")
        writer, sent, latency = map(int, fields)
        samples.append((writer, sent, latency))
    return sorted(samples, key=lambda sample: sample[1])


def _at(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def timeline(samples: list[tuple[int, int, int]], step_s: float) -> list[Step]:
    """The batches by the step of the window they were sent in (steps without any are left out)."""
    if not samples:
        return []
    first = samples[0][1]
    steps: dict[int, list[tuple[int, int, int]]] = {}
    for sample in samples:
        steps.setdefault(int((sample[1] - first) / 1e9 / step_s), []).append(sample)
    out = []
    for index in sorted(steps):
        batch = steps[index]
        latencies = sorted(latency / 1e6 for _, _, latency in batch)
        out.append(
            Step(
                start_s=index * step_s,
                batches=len(batch),
                batches_per_s=len(batch) / step_s,
                p50_ms=_at(latencies, 0.5),
                p99_ms=_at(latencies, 0.99),
                max_ms=latencies[-1],
                writers=len({writer for writer, _, _ in batch}),
            )
        )
    return out


def render(steps: list[Step]) -> str:
    lines = [
        "| from (s) | batches/s | ack p50 (ms) | ack p99 (ms) | ack max (ms) | writers |",
        "|---|---|---|---|---|---|",
    ]
    for step in steps:
        lines.append(
            f"| {step.start_s:.1f} | {step.batches_per_s:,.0f} | {step.p50_ms:.2f} | {step.p99_ms:.2f} | "
            f"{step.max_ms:.2f} | {step.writers} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="written by agl-loadgen -scenario span-ack -latencies FILE")
    parser.add_argument("--step", type=float, default=0.5, help="seconds per row (default 0.5)")
    args = parser.parse_args()
    if args.step <= 0:
        parser.error("--step must be positive")
    try:
        samples = read_samples(args.file)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"ack_timeline: {exc}") from None
    print(render(timeline(samples, args.step)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
