"""LLM proxy benchmark: what the proxy adds to a call, and what recording each call costs.

The backend is the deterministic test server (``tests/support/openai_server.py``, replies of ~12
tokens, streamed in chunks of 2 tokens), so the numbers are the proxy's overhead, not a model's
speed. That stdlib server answers in ~45 ms (its small writes meet TCP delayed acks), which
dominates the latencies: read the differences between the ways, not the absolute values.

Three ways, the same calls (chat completions through the ``openai`` client):

- direct to the backend;
- through the proxy, recording nothing (no store);
- through the proxy, each call's span acknowledged by agl-server (a child process) before the
  caller sees the end of the answer.

Each way: ``--calls`` sequential calls (median and p99 latency) and the same number of calls from
``--concurrency`` agents at once (calls/s), plain and streamed.

Run: ``.venv/bin/python bench/llm_proxy_bench.py [--calls N] [--concurrency C]``.
Prints a table and writes ``bench/results/llm_proxy_bench.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import openai
from agl_llm_proxy import LLMProxy
from common import ROOT, Report, percentile

from agl_server.process import ServerProcess

sys.path.insert(0, str(ROOT / "tests"))
from support.openai_server import OpenAIServer

from agl_core.client import GrpcStore

MESSAGES = [{"role": "user", "content": "what is the sum of the first ten primes please answer briefly"}]


async def one_call(client: openai.AsyncOpenAI, stream: bool) -> float:
    started = time.perf_counter()
    if stream:
        chunks = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        async for _ in chunks:
            pass
    else:
        await client.chat.completions.create(model="m", messages=MESSAGES)
    return time.perf_counter() - started


async def measure(clients: list[openai.AsyncOpenAI], calls: int, concurrency: int, stream: bool) -> dict[str, float]:
    await one_call(clients[0], stream)  # warm the connections
    latencies = [await one_call(clients[i % len(clients)], stream) for i in range(calls)]
    queue = list(range(calls))

    async def agent(index: int) -> None:
        while queue:
            queue.pop()
            await one_call(clients[index % len(clients)], stream)

    started = time.perf_counter()
    await asyncio.gather(*(agent(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "median_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "calls_per_s": calls / elapsed,
    }


async def run(calls: int, concurrency: int, report: Report) -> None:
    with OpenAIServer() as backend:
        backend._httpd.socket.listen(256)  # http.server's backlog of 5 drops concurrent connects
        server = ServerProcess(Path(tempfile.mkdtemp(prefix="agl-proxy-bench-")) / "data").start()
        try:
            async with GrpcStore(server.address) as store:
                rollouts = [await store.start_rollout({"i": i}) for i in range(concurrency)]
                direct = [openai.AsyncOpenAI(base_url=backend.base_url, api_key="t", max_retries=0)]
                async with LLMProxy([backend.base_url]) as bare, LLMProxy([backend.base_url], store=store) as recording:
                    ways = {
                        "direct": direct,
                        "proxy, not recorded": [
                            openai.AsyncOpenAI(base_url=f"{bare.url}/v1", api_key="t", max_retries=0)
                        ],
                        "proxy, recorded in agl-server": [
                            openai.AsyncOpenAI(
                                base_url=recording.as_resource("m").get_base_url(r.rollout_id, r.attempt.attempt_id),  # type: ignore[union-attr]
                                api_key="t",
                                max_retries=0,
                            )
                            for r in rollouts
                        ],
                    }
                    for stream in (False, True):
                        kind = "streamed" if stream else "plain"
                        for way, clients in ways.items():
                            result = await measure(clients, calls, concurrency, stream)
                            report.add(f"{kind}, {way}: median latency", result["median_ms"], "ms")
                            report.add(f"{kind}, {way}: p99 latency", result["p99_ms"], "ms")
                            report.add(
                                f"{kind}, {way}: throughput ({concurrency} agents)", result["calls_per_s"], "calls/s"
                            )
                    report.context["spans_recorded"] = recording.counters["recorded"]
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    report = Report("LLM proxy overhead", context={"calls": args.calls, "concurrency": args.concurrency})
    asyncio.run(run(args.calls, args.concurrency, report))
    print()
    print(report.table())
    print(f"\nsaved {report.save('llm_proxy_bench')}")


if __name__ == "__main__":
    main()
