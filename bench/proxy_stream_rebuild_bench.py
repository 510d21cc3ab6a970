"""LLM proxy benchmark: the cost of rebuilding a streamed response from its chunks, per chunk.

While it passes a stream on, the proxy folds every chunk into the response it records (text,
token ids, logprobs, tool calls). That work runs on the proxy's event loop, so a cost that grows
with the stream's length stalls every other call the proxy serves. This bench feeds streams of
1k, 4k and 16k chunks in vLLM's shape (one token per chunk, its token id and logprob; the first
chunk carries 512 prompt token ids) and measures, per chunk:

- ``rebuild``: folding parsed chunks into the response and building it at the end
  (``StreamAccumulator.add`` for each chunk, then ``response()``): the cost the issue is about;
- ``decode + parse + rebuild``: the proxy's whole per-chunk work on a stream (SSE split, JSON
  parse, rebuild), from the bytes as the backend sends them.

A linear rebuild costs the same per chunk at 1k and 16k chunks; a quadratic one grows with the
length. Times are the thread's CPU time (``time.thread_time``: the event loop's own work, not the
time other processes of a loaded machine take from it), best of ``--repeat`` runs.

Run: ``.venv/bin/python bench/proxy_stream_rebuild_bench.py [--label before|after] [--repeat N]``.
Prints a table and writes ``bench/results/proxy_stream_rebuild_<label>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from agl_llm_proxy.sse import SSEDecoder
from common import Report

from agl_core import semconv
from agl_core.instrumentation.llm_record import StreamAccumulator

SIZES = (1_000, 4_000, 16_000)
PROMPT_IDS = list(range(1000, 1512))


def chunks(n: int) -> list[dict[str, Any]]:
    """``n`` chat chunks of one token each, as vLLM streams them with token ids and logprobs."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        delta: dict[str, Any] = {"content": f"w{i} "}
        if i == 0:
            delta["role"] = "assistant"
        chunk: dict[str, Any] = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "bench-model",
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "logprobs": {"content": [{"token": f"w{i} ", "logprob": -0.5, "top_logprobs": []}]},
                    "finish_reason": "stop" if i == n - 1 else None,
                    "token_ids": [2000 + i],
                }
            ],
        }
        if i == 0:
            chunk["prompt_token_ids"] = PROMPT_IDS
        out.append(chunk)
    return out


def rebuild(parsed: list[dict[str, Any]]) -> dict[str, Any]:
    accumulator = StreamAccumulator(semconv.GEN_AI_OPERATION_CHAT)
    for chunk in parsed:
        accumulator.add(chunk)
    return accumulator.response()


def decode_and_rebuild(wire: list[bytes]) -> dict[str, Any]:
    decoder = SSEDecoder()
    accumulator = StreamAccumulator(semconv.GEN_AI_OPERATION_CHAT)
    for piece in wire:
        for event in decoder.feed(piece):
            if not event.done:
                accumulator.add(event.json())
    return accumulator.response()


def best_of(repeat: int, fn: Any, arg: Any) -> tuple[float, Any]:
    best = float("inf")
    result = None
    for _ in range(repeat):
        started = time.thread_time()
        result = fn(arg)
        best = min(best, time.thread_time() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="after", help="suffix of the results file (before / after)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    report = Report("LLM proxy: streamed response rebuild cost", context={"sizes": SIZES, "repeat": args.repeat})
    for n in SIZES:
        parsed = chunks(n)
        wire = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in parsed] + [b"data: [DONE]\n\n"]
        seconds, response = best_of(args.repeat, rebuild, parsed)
        choice = response["choices"][0]
        # Check that the rebuild is whole, so a fast but lossy one cannot pass for an improvement.
        assert len(choice["token_ids"]) == n and len(choice["logprobs"]["content"]) == n, "rebuild lost tokens"
        assert response["prompt_token_ids"] == PROMPT_IDS
        report.add(f"rebuild, {n:>6,} chunks: per chunk", seconds / n * 1e6, "µs/chunk")
        report.add(f"rebuild, {n:>6,} chunks: whole stream", seconds * 1e3, "ms")
        seconds, _ = best_of(args.repeat, decode_and_rebuild, wire)
        report.add(f"decode + parse + rebuild, {n:>6,} chunks: per chunk", seconds / n * 1e6, "µs/chunk")
    print()
    print(report.table())
    print(f"\nsaved {report.save(f'proxy_stream_rebuild_{args.label}')}")


if __name__ == "__main__":
    main()
