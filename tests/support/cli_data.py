"""Real data for the ``agl`` command tests (tests/cli): rollouts run by real runners (agl's Runner on
the Work stream, spans through the OpenTelemetry tracer), with rewards, a failed attempt, a rollout
left in the queue, and two versions of a prompt template."""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry import trace

from agl_core.client import GrpcStore
from agl_core.emitter import emit_reward
from agl_core.tracer import OtelTracer
from agl_core.types import LLM, PromptTemplate, Rollout
from support.runners import runners

agent_tracer = trace.get_tracer("agl-cli-test")


@dataclass
class Held:
    """What the populated server holds, as the test made it."""

    address: str
    succeeded: list[str] = field(default_factory=list)
    failed: str = ""
    queued: str = ""
    resources: list[str] = field(default_factory=list)  # [first set, second set (the latest)]


async def agent(rollout: Rollout, llm: LLM) -> None:
    """Two nested spans and a reward; a negative ``x`` fails the attempt after its spans."""
    x = rollout.input["x"]
    with agent_tracer.start_as_current_span("plan"):
        with agent_tracer.start_as_current_span("lookup") as lookup:
            lookup.set_attribute("x", x)
    if x < 0:
        raise ValueError("negative input")
    emit_reward(float(x))


async def populate(address: str) -> Held:
    held = Held(address)
    store = GrpcStore(address)
    try:
        first = await store.add_resources(
            {
                "main_llm": LLM(endpoint="http://127.0.0.1:9/v1", model="tiny", api_key="sk-secret"),
                "prompt": PromptTemplate(template="Solve {task}.\nShow your work."),
            }
        )
        second = await store.add_resources(
            {
                "main_llm": LLM(endpoint="http://127.0.0.1:9/v1", model="tiny", api_key="sk-secret"),
                "prompt": PromptTemplate(template="Solve {task}.\nAnswer in one line."),
            }
        )
        held.resources = [first.resources_id, second.resources_id]
        tracer = OtelTracer()
        tracer.init()
        try:
            async with runners(store, tracer, agent, count=2):
                specs = [
                    {"input": {"x": 1}, "resources_id": first.resources_id, "mode": "train"},
                    {"input": {"x": 2}, "resources_id": second.resources_id, "mode": "train"},
                    {"input": {"x": -1}, "resources_id": second.resources_id, "mode": "val"},
                ]
                rollouts = await store.enqueue_rollouts(specs)
                ids = [r.rollout_id for r in rollouts]
                finished = await store.wait_for_rollouts(ids, timeout=120)
                assert len(finished) == 3, f"rollouts did not finish: {finished}"
        finally:
            tracer.teardown()
        held.succeeded, held.failed = ids[:2], ids[2]
        held.queued = (await store.enqueue_rollouts([{"input": {"x": 3}}]))[0].rollout_id
    finally:
        await store.close()
    return held
