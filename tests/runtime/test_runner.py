"""The Runner and LitAgent against both stores: embedded LMDB (claiming directly) and agl-server
(work pushed on the Work stream)."""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from store_waits import wait_status

from agl_core import semconv
from agl_core.client import GrpcStore
from agl_core.litagent import LitAgent, llm_rollout, prompt_rollout, rollout
from agl_core.plugins import get_plugin_manager, hookimpl
from agl_core.runner import DequeueSource, Hook, Runner, WorkSource, WorkStreamSource
from agl_core.store import LmdbStore
from agl_core.tracer.base import Tracer
from agl_core.types import (
    LLM,
    AttemptStatus,
    CustomResource,
    PromptTemplate,
    ProxyLLM,
    Rollout,
    RolloutConfig,
    RolloutStatus,
    Span,
    new_span,
    span_attributes,
)
from agl_server.process import ServerProcess


@dataclass
class Setup:
    """A store and the work source a runner uses with it."""

    store: Any
    source: Callable[..., WorkSource]
    server: ServerProcess | None = None


@pytest.fixture(params=["embedded", "server"])
async def setup(request: pytest.FixtureRequest, data_dir: Path) -> AsyncIterator[Setup]:
    if request.param == "embedded":
        store = LmdbStore(data_dir)
        yield Setup(
            store,
            lambda worker_id="w", capacity=1: DequeueSource(store, worker_id=worker_id, capacity=capacity),
        )
        await store.close()
    else:
        server = ServerProcess(data_dir, log_path=data_dir.parent / "server.log").start()
        store = GrpcStore(server.address)
        yield Setup(
            store,
            lambda worker_id="w", capacity=1: WorkStreamSource(server.address, worker_id=worker_id, capacity=capacity),
            server,
        )
        await store.close()
        server.stop()


async def run_all(setup: Setup, agent: LitAgent[Any], inputs: list[Any], **runner_options: Any) -> list[Rollout]:
    """Enqueue ``inputs``, serve them with one runner until all are terminal, stop it."""
    rollouts = await setup.store.enqueue_rollouts([{"input": item} for item in inputs])
    capacity = runner_options.pop("capacity", 1)
    runner = Runner(agent, store=setup.store, source=setup.source(capacity=capacity), **runner_options)
    stop = asyncio.Event()
    serving = asyncio.create_task(runner.run(stop))
    done = await setup.store.wait_for_rollouts([r.rollout_id for r in rollouts], timeout=30)
    stop.set()
    await asyncio.wait_for(serving, 30)
    by_id = {r.rollout_id: r for r in done}
    return [by_id[r.rollout_id] for r in rollouts]


# --- a tracer small enough to read -----------------------------------------------------------------

_spans: contextvars.ContextVar[list[Span]] = contextvars.ContextVar("spans")


def record(name: str, **attributes: Any) -> None:
    """What an instrumented library would do inside a traced rollout."""
    _spans.get().append(new_span(name, rollout_id="", attempt_id="", attributes=attributes))


class ListTracer(Tracer):
    """Collects the spans recorded in a trace context and stores them when the context exits."""

    def __init__(self) -> None:
        self.last: list[Span] = []

    @asynccontextmanager
    async def trace_context(
        self,
        name: str | None = None,
        *,
        store: Any = None,
        rollout_id: str | None = None,
        attempt_id: str | None = None,
    ) -> AsyncIterator[list[Span]]:
        spans: list[Span] = []
        token = _spans.set(spans)
        try:
            yield spans
        finally:
            _spans.reset(token)
            for span in spans:
                span.rollout_id, span.attempt_id = rollout_id or "", attempt_id or ""
            if store is not None and spans:
                await store.add_spans(spans)
            self.last = spans

    @contextmanager
    def trace_context_sync(self, name: str | None = None, **kwargs: Any) -> Iterator[list[Span]]:
        raise NotImplementedError

    def get_last_trace(self) -> list[Span]:
        return list(self.last)


# --- return conventions ----------------------------------------------------------------------------


@rollout
async def conventions(task: str, rollout: Rollout) -> Any:
    if task == "float":
        return 0.75
    if task == "spans":
        return [
            new_span("my.step", rollout_id="", attempt_id="", attributes={"n": 1}),
            new_span(semconv.SPAN_REWARD, rollout_id="", attempt_id="", attributes={semconv.REWARD_VALUE: 0.25}),
        ]
    if task == "traced":
        record("chat gpt", **{semconv.GEN_AI_OPERATION: "chat"})
        record(semconv.SPAN_REWARD, **{semconv.REWARD_VALUE: 0.5})
        return None
    if task == "raise":
        raise ValueError("the task was too hard")
    return {"not": "allowed"}


async def test_return_conventions(setup: Setup) -> None:
    tracer = ListTracer()
    inputs = ["float", "spans", "traced", "raise", "dict"]
    results = dict(zip(inputs, await run_all(setup, conventions, inputs, tracer=tracer), strict=True))

    async def spans_of(task: str) -> list[Span]:
        return await setup.store.query_spans(results[task].rollout_id)

    assert results["float"].status == RolloutStatus.SUCCEEDED
    [reward] = await spans_of("float")
    assert reward.name == semconv.SPAN_REWARD and span_attributes(reward)[semconv.REWARD_VALUE] == 0.75
    assert results["float"].attempt.metadata["reward"] == 0.75

    assert [s.name for s in await spans_of("spans")] == ["my.step", semconv.SPAN_REWARD]
    assert all(s.attempt_id == results["spans"].attempt.attempt_id for s in await spans_of("spans"))
    assert results["spans"].attempt.metadata["reward"] == 0.25

    assert [s.name for s in await spans_of("traced")] == ["chat gpt", semconv.SPAN_REWARD]
    assert results["traced"].attempt.metadata["reward"] == 0.5

    for task, error_type, words in (
        ("raise", "ValueError", "too hard"),
        ("dict", "TypeError", "returned a dict"),
    ):
        assert results[task].status == RolloutStatus.FAILED
        [failure] = await spans_of(task)
        attributes = span_attributes(failure)
        assert failure.name == semconv.SPAN_EXCEPTION
        assert (
            attributes[semconv.EXCEPTION_TYPE].endswith(error_type) and words in attributes[semconv.EXCEPTION_MESSAGE]
        )
        assert "Traceback" in attributes[semconv.EXCEPTION_STACKTRACE]
        assert results[task].attempt.metadata["error_type"] == error_type


# --- injection -------------------------------------------------------------------------------------


@llm_rollout
async def llm_agent(task: dict[str, Any], llm: LLM, rollout: Rollout) -> float:
    assert isinstance(llm, LLM) and not isinstance(llm, ProxyLLM)
    expected = f"http://proxy:9000/rollout/{rollout.rollout_id}/attempt/{rollout.attempt.attempt_id}/v1"
    return 1.0 if llm.endpoint == expected and llm.model == "m" else 0.0


@prompt_rollout
def prompt_agent(task: dict[str, Any], prompt_template: PromptTemplate, style: Any) -> float:
    text = prompt_template.format(**task)
    return 1.0 if text == "say hi" and style.value == "terse" else 0.0


@rollout
async def annotated_agent(task: Any, model: LLM, notes: PromptTemplate, resources: dict[str, Any]) -> float:
    return 1.0 if model.model == "m" and notes.template == "say {word}" and len(resources) == 3 else 0.0


@llm_rollout
async def needs_llm(task: Any, llm: LLM) -> float:
    return 1.0


async def test_decorators_inject_resources_by_name_and_annotation(setup: Setup) -> None:
    await setup.store.add_resources(
        {
            "llm": ProxyLLM(endpoint="http://proxy:9000/v1", model="m"),
            "prompt": PromptTemplate(template="say {word}"),
            "style": CustomResource(type="style", value="terse"),
        }
    )
    for agent in (llm_agent, prompt_agent, annotated_agent):
        [result] = await run_all(setup, agent, [{"word": "hi"}])
        assert result.status == RolloutStatus.SUCCEEDED, agent.name
        assert result.attempt.metadata["reward"] == 1.0, agent.name

    await setup.store.add_resources({"prompt": PromptTemplate(template="no llm here")})
    [missing] = await run_all(setup, needs_llm, ["x"])
    assert missing.status == RolloutStatus.FAILED
    assert "no LLM resource" in missing.attempt.metadata["error_message"]


def test_decorators_check_signatures() -> None:
    with pytest.raises(TypeError, match="llm"):
        llm_rollout(lambda task: 1.0)
    with pytest.raises(TypeError, match="prompt_template"):
        prompt_rollout(lambda task, llm: 1.0)
    # The agent is still the function when called directly.
    style = CustomResource(type="style", value="terse")
    assert prompt_agent({"word": "hi"}, PromptTemplate(template="say {word}"), style) == 1.0


# --- hooks and lifecycle plugins -------------------------------------------------------------------


class RecordingHook(Hook):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def on_rollout_start(self, *, rollout: Rollout, **_: Any) -> None:
        self.calls.append(("rollout_start", rollout.input))

    def on_trace_start(self, *, rollout: Rollout, tracer: Tracer) -> None:  # a plain method works too
        self.calls.append(("trace_start", rollout.input))

    async def on_trace_end(self, *, rollout: Rollout) -> None:
        raise RuntimeError("a broken hook must not fail the attempt")

    async def on_rollout_end(self, *, rollout: Rollout, status: AttemptStatus, reward: float | None) -> None:
        self.calls.append(("rollout_end", f"{rollout.input}:{status}:{reward}"))


@dataclass
class LifecyclePlugin:
    events: list[tuple[str, Any]] = field(default_factory=list)

    @hookimpl
    def agl_on_rollout_start(self, rollout: Rollout, worker_id: str) -> None:
        self.events.append(("start", worker_id))

    @hookimpl
    async def agl_on_trace_end(self, error: BaseException | None) -> None:
        self.events.append(("trace_end", type(error).__name__ if error else None))

    @hookimpl
    def agl_on_rollout_end(self, status: AttemptStatus, spans: list[Span], error: BaseException | None) -> None:
        self.events.append(("end", (status, [s.name for s in spans])))


class BrokenPlugin:
    @hookimpl
    def agl_on_rollout_start(self) -> None:
        raise RuntimeError("broken observer")


async def test_hooks_and_lifecycle_plugins_observe_every_attempt(setup: Setup) -> None:
    hook = RecordingHook()
    plugin = LifecyclePlugin()
    pm = get_plugin_manager(load_entrypoints=False, plugins=[BrokenPlugin(), plugin])
    results = await run_all(setup, conventions, ["float", "raise"], hooks=[hook], plugin_manager=pm)
    assert [r.status for r in results] == [RolloutStatus.SUCCEEDED, RolloutStatus.FAILED]
    assert hook.calls == [
        ("rollout_start", "float"),
        ("trace_start", "float"),
        ("rollout_end", "float:succeeded:0.75"),
        ("rollout_start", "raise"),
        ("trace_start", "raise"),
        ("rollout_end", "raise:failed:None"),
    ]
    assert plugin.events == [
        ("start", "w"),
        ("trace_end", None),
        ("end", (AttemptStatus.SUCCEEDED, [semconv.SPAN_REWARD])),
        ("start", "w"),
        ("trace_end", "ValueError"),
        ("end", (AttemptStatus.FAILED, [semconv.SPAN_EXCEPTION])),
    ]


# --- concurrency, modes, stopping ------------------------------------------------------------------


class Gate:
    """Lets agents wait until ``needed`` of them are inside at once."""

    def __init__(self, needed: int) -> None:
        self.needed, self.inside, self.full = needed, 0, asyncio.Event()

    async def enter(self) -> None:
        self.inside += 1
        if self.inside >= self.needed:
            self.full.set()
        await asyncio.wait_for(self.full.wait(), 10)


async def test_capacity_runs_attempts_concurrently(setup: Setup) -> None:
    gate = Gate(3)

    @rollout
    async def together(task: Any) -> float:
        await gate.enter()  # times out unless three attempts run at the same time
        return 1.0

    results = await run_all(setup, together, [1, 2, 3], capacity=3)
    assert [r.status for r in results] == [RolloutStatus.SUCCEEDED] * 3


class ModeAgent(LitAgent[Any]):
    async def training_rollout_async(self, task: Any, resources: Any, rollout: Rollout) -> float:
        return 1.0

    async def validation_rollout_async(self, task: Any, resources: Any, rollout: Rollout) -> float:
        return 0.5


async def test_mode_picks_training_or_validation_rollout(setup: Setup) -> None:
    train = await setup.store.enqueue_rollout("t", mode="train")
    val = await setup.store.enqueue_rollout("v", mode="val")
    runner = Runner(ModeAgent(), store=setup.store, source=setup.source(), max_rollouts=2)
    await asyncio.wait_for(runner.run(), 30)
    assert (await setup.store.get_rollout(train.rollout_id)).attempt.metadata["reward"] == 1.0
    assert (await setup.store.get_rollout(val.rollout_id)).attempt.metadata["reward"] == 0.5


async def test_stop_drains_and_cancel_gives_attempts_up(setup: Setup) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    @rollout
    async def waits(task: Any) -> float:
        started.set()
        await release.wait()
        return 1.0

    config = RolloutConfig(max_attempts=2, retry_condition=["unresponsive"])
    # Stop while an attempt runs: it finishes before the runner leaves.
    first = await setup.store.enqueue_rollout("a", config=config)
    stop = asyncio.Event()
    serving = asyncio.create_task(Runner(waits, store=setup.store, source=setup.source("w1")).run(stop))
    await asyncio.wait_for(started.wait(), 10)
    stop.set()
    release.set()
    stats = await asyncio.wait_for(serving, 30)
    assert stats.succeeded == 1
    assert (await setup.store.get_rollout(first.rollout_id)).status == RolloutStatus.SUCCEEDED

    # Cancel while an attempt runs: it is given up and goes back to the queue.
    release.clear()
    started.clear()
    second = await setup.store.enqueue_rollout("b", config=config)
    serving = asyncio.create_task(Runner(waits, store=setup.store, source=setup.source("w2")).run())
    await asyncio.wait_for(started.wait(), 10)
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    # Embedded, the runner gives the attempt up itself; over the Work stream, the server does when
    # the stream breaks: wait for it on the event log.
    await wait_status(setup.store, second.rollout_id, RolloutStatus.REQUEUING)
    rollout_now = await setup.store.get_rollout(second.rollout_id)
    assert rollout_now.status == RolloutStatus.REQUEUING
    assert rollout_now.attempt.status == AttemptStatus.UNRESPONSIVE
    assert (await setup.store.get_worker("w2")).status == "unknown"


async def test_work_stream_survives_a_server_restart(data_dir: Path) -> None:
    # A short grace: if the kill lands between the claim's commit and its assignment leaving the
    # server, the worker comes back without the attempt and recovery puts the rollout back in the
    # queue (runner_service/recovery.py) within the wait below.
    env = {**os.environ, "AGL_RUNNER_RECONNECT_GRACE": "1"}
    server = ServerProcess(data_dir, env=env, log_path=data_dir.parent / "server.log").start()
    store = GrpcStore(server.address)
    release = asyncio.Event()

    @rollout
    async def waits(task: Any) -> float:
        await release.wait()
        return 1.0

    try:
        rollout_ = await store.enqueue_rollout("survivor")
        runner = Runner(waits, store=store, source=WorkStreamSource(server.address, worker_id="steady"))
        stop = asyncio.Event()
        serving = asyncio.create_task(runner.run(stop))

        async def running() -> None:
            async for event in store.watch_rollouts(rollout_ids=[rollout_.rollout_id], after_event_id=0):
                if event.new_status == RolloutStatus.RUNNING:
                    return

        await asyncio.wait_for(running(), 10)
        server.kill()  # a crash: the attempt is RUNNING in the store, the agent still works on it
        server.restart()
        release.set()
        [done] = await store.wait_for_rollouts([rollout_.rollout_id], timeout=30)
        assert done.status == RolloutStatus.SUCCEEDED and done.attempt.metadata["reward"] == 1.0
        assert [a.status for a in await store.query_attempts(rollout_.rollout_id)] == [AttemptStatus.SUCCEEDED]
        stop.set()
        await asyncio.wait_for(serving, 30)
    finally:
        await store.close()
        server.stop()
