"""A real agl-server holding real data for the ``agl`` command tests: rollouts run by real runners
(agl's Runner on the Work stream, spans through the OpenTelemetry tracer), with rewards, a failed
attempt, a rollout left in the queue, and two versions of a prompt template."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from support.runners import runners

from agl_core.cli import main
from agl_core.client import GrpcStore
from agl_core.emitter import emit_reward
from agl_core.tracer import OtelTracer
from agl_core.types import LLM, PromptTemplate, Rollout
from agl_server.process import ServerProcess

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


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Held]:
    """One populated agl-server for the read-only command tests of a module."""
    root = tmp_path_factory.mktemp("agl-cli")
    process = ServerProcess(root / "data", log_path=root / "server.log").start()
    try:
        yield asyncio.run(populate(process.address))
    finally:
        process.stop()


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        import json

        return json.loads(self.out)


@pytest.fixture
def agl(capsys: pytest.CaptureFixture[str]) -> Any:
    """``agl(*args)`` runs the command in this process and returns its exit code and output."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse usage errors
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def data_path(tmp_path: Path, name: str) -> Path:
    return tmp_path / name
