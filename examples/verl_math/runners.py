"""Runners for the math agent: worker loops taking rollouts from agl-server and running the agent.

    python examples/verl_math/runners.py --store 127.0.0.1:4747 --workers 16

Each worker dequeues a rollout (long poll), reads the resources it runs with (the ``main_llm``
ProxyLLM), runs the agent inside a trace context (rewards become spans; the LLM proxy records
the LLM calls) and finishes the attempt. This small loop stands in for agl's Runner until it
lands; run as many processes of it, on as many machines, as the rollout load needs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from agent import math_agent

from agl_core.client import GrpcStore
from agl_core.tracer import OtelTracer

logger = logging.getLogger("verl_math.runners")


async def worker(store: GrpcStore, tracer: OtelTracer, name: str, resource: str) -> None:
    while True:
        rollout = await store.dequeue_rollout(worker_id=name, wait=5.0)
        if rollout is None or rollout.attempt is None:
            continue
        attempt_id = rollout.attempt.attempt_id
        status = "succeeded"
        try:
            resources = await store.get_resources(rollout.resources_id) if rollout.resources_id else None
            if resources is None or resource not in resources.resources:
                raise RuntimeError(f"rollout {rollout.rollout_id} has no {resource!r} resource")
            llm = resources.resources[resource]
            async with tracer.trace_context(name, store=store, rollout_id=rollout.rollout_id, attempt_id=attempt_id):
                await math_agent(rollout, llm)  # type: ignore[arg-type]
        except Exception:
            logger.exception("rollout %s failed", rollout.rollout_id)
            status = "failed"
        await store.update_attempt(rollout.rollout_id, attempt_id, status=status)


async def serve(address: str, workers: int, resource: str, prefix: str) -> None:
    # The LLM proxy records the LLM calls; the tracer records the rewards the agent emits.
    tracer = OtelTracer(instrument_openai=False)
    tracer.init()
    async with GrpcStore(address) as store:
        await store.wait_ready(timeout=60)
        await asyncio.gather(*(worker(store, tracer, f"{prefix}-{i}", resource) for i in range(workers)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="127.0.0.1:4747", help="agl-server host:port")
    parser.add_argument("--workers", type=int, default=8, help="concurrent agents in this process")
    parser.add_argument("--resource", default="main_llm", help="name of the LLM resource (agl.rollout.resource_name)")
    parser.add_argument("--name", default="runner", help="prefix of the worker ids")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.store, args.workers, args.resource, args.name))


if __name__ == "__main__":
    main()
