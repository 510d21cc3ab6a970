"""The Trainer end to end: both execution strategies, real runner threads and processes, a real
agl-server, and the store's own event log as the witness of what happened."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

import pytest
import runtime_agents
from runtime_agents import EchoAgent, block_the_loop, hang_first_attempt, hang_forever, parity_agent
from support.ledger import assert_each_exactly_once, read_ledger
from support.waits import until

from agl_core.algorithm import Algorithm, algo, run_rollouts
from agl_core.client import GrpcStore
from agl_core.litagent import prompt_rollout
from agl_core.plugins import PluginError
from agl_core.runner import Hook
from agl_core.store import LmdbStore
from agl_core.trainer import Progress, RunFailedError, Trainer
from agl_core.types import AttemptStatus, PromptTemplate, RolloutStatus
from agl_plugins.algorithms.baseline import Baseline, BaselineResult
from agl_plugins.strategies.cs import ClientServerStrategy
from agl_plugins.strategies.shm import SharedMemoryStrategy
from agl_server.process import ServerProcess


def test_fit_shm_200_tasks_4_runners_each_exactly_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    trainer = Trainer(strategy=SharedMemoryStrategy(data_dir=data_dir), n_runners=4, runner_capacity=2, progress=False)
    result = trainer.fit(parity_agent, list(range(200)))
    assert isinstance(result.result, BaselineResult) and result.train is not None
    assert result.status == "succeeded" and result.mean_reward == 0.5
    assert repr(result) == "FitResult(succeeded: train 200 rollouts: 200 succeeded, 0 failed, mean reward 0.500)"
    assert (result.train.rollouts, result.train.succeeded, result.train.mean_reward) == (200, 200, 0.5)
    ledger = asyncio.run(read_ledger(data_dir))
    assert_each_exactly_once(ledger, 200)
    assert sorted(ledger.workers) == ["runner-0", "runner-1", "runner-2", "runner-3"]
    assert {a.worker_id for attempts in ledger.attempts.values() for a in attempts} <= set(ledger.workers)


def test_fit_cs_200_tasks_4_runner_processes_each_exactly_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    trainer = Trainer(strategy={"type": "cs", "data_dir": data_dir}, n_runners=4, runner_capacity=2, progress=False)
    result = trainer.fit(parity_agent, list(range(200)), val_dataset=list(range(10)))
    assert (result.train.succeeded, result.train.mean_reward) == (200, 0.5)
    assert result.val is not None and result.val.succeeded == 10
    ledger = asyncio.run(read_ledger(data_dir))
    assert_each_exactly_once(ledger, 210)
    assert len(ledger.workers) == 4
    assert {w.heartbeat_stats["pid"] for w in ledger.workers.values()}.isdisjoint({os.getpid()})
    # Every runner left cleanly: its stream closed, the server marked it gone.
    assert all(w.status == "unknown" and w.heartbeat_stats["connected"] is False for w in ledger.workers.values())


@algo
async def kill_a_runner_midway(*, store: Any, train_dataset: list[dict[str, Any]]) -> dict[str, Any]:
    """Enqueue the tasks, SIGKILL the runner process that holds the blocking task's first attempt,
    and wait until everything is finished."""
    rollouts = await store.enqueue_rollouts(
        [{"input": task, "rollout_id": f"task-{i}"} for i, task in enumerate(train_dataset)]
    )
    victim_rollout = next(r.rollout_id for r, task in zip(rollouts, train_dataset, strict=True) if task.get("block"))
    # The agent hangs on that first attempt, so once it runs, its runner holds it until killed.
    async for event in store.watch_rollouts(rollout_ids=[victim_rollout], after_event_id=0):
        if event.new_status == RolloutStatus.RUNNING:
            victim = event.rollout.attempt.worker_id
            break
    worker = await store.get_worker(victim)
    os.kill(int(worker.heartbeat_stats["pid"]), signal.SIGKILL)
    done = await store.wait_for_rollouts([r.rollout_id for r in rollouts], timeout=120)
    return {"victim": victim, "victim_rollout": victim_rollout, "done": len(done)}


def test_cs_runner_killed_midrun_loses_nothing_and_counts_nothing_twice(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    tasks = [{"i": i, "block": i == 17} for i in range(200)]
    trainer = Trainer(
        algorithm=kill_a_runner_midway,
        strategy=ClientServerStrategy(data_dir=data_dir),
        n_runners=4,
        runner_capacity=2,
        progress=False,
    )
    outcome = trainer.fit(hang_first_attempt, tasks).result
    assert outcome["done"] == 200
    ledger = asyncio.run(read_ledger(data_dir))
    assert_each_exactly_once(ledger, 200)
    victim, victim_rollout = outcome["victim"], outcome["victim_rollout"]
    # The killed runner's attempts were given up at once and retried by the others.
    given_up = [a for attempts in ledger.attempts.values() for a in attempts if a.status == AttemptStatus.UNRESPONSIVE]
    assert given_up and all(a.worker_id == victim for a in given_up)
    assert victim_rollout in {a.rollout_id for a in given_up}
    for attempt in given_up:
        retry = ledger.attempts[attempt.rollout_id][-1]
        assert retry.status == AttemptStatus.SUCCEEDED and retry.worker_id != victim
    assert ledger.workers[victim].status == "unknown" and ledger.workers[victim].heartbeat_stats["connected"] is False


@algo
async def leave_a_stuck_attempt(*, store: Any) -> str:
    """Start one rollout whose agent never returns, wait until the agent runs, and finish regardless.
    RUNNING alone is not enough: an attempt claimed RUNNING may not have reached its agent yet, and
    a runner stopped before that ends cleanly instead of being stuck."""
    started = Path(tempfile.mkdtemp(prefix="agl-stuck-")) / "started"
    rollout = await store.enqueue_rollout({"started": str(started)}, rollout_id="stuck")

    async def agent_started() -> bool:  # the agent runs in a runner process: a file is what it leaves
        return started.exists()

    await until(agent_started, timeout=120, what="the stuck agent's start")
    shutil.rmtree(started.parent, ignore_errors=True)  # the agent wrote it once, at its start
    return rollout.rollout_id


@pytest.mark.parametrize(
    ("agent", "exit_code", "terminate_timeout"),
    [
        # The stop signal cannot end it; SIGINT aborts it (attempt given up). The runner needs time
        # to handle SIGINT (a second or more under load), and a long bound costs nothing when it
        # exits sooner: were it too short, SIGTERM would end it and the test would see -15.
        (hang_forever, 130, 120.0),
        # Its loop is stuck, so SIGINT cannot reach it either: SIGINT's time runs out, SIGTERM ends it.
        (block_the_loop, -signal.SIGTERM, 1.0),
    ],
)
def test_cs_shutdown_escalates(server: ServerProcess, agent: Any, exit_code: int, terminate_timeout: float) -> None:
    # An agl-server of the test's own, which outlives the run: what it does about the runner's
    # end can be watched to the end.
    strategy = ClientServerStrategy(
        server_address=server.address, graceful_timeout=0.5, terminate_timeout=terminate_timeout
    )
    Trainer(algorithm=leave_a_stuck_attempt, strategy=strategy, n_runners=1, progress=False).fit(agent, [])
    [process] = strategy.processes
    assert process.exitcode == exit_code

    async def given_up() -> list[Any]:
        store = GrpcStore(server.address)
        try:
            # However the runner ended, its stream broke and the server gave the attempt up
            # (the Trainer's default policy then queues the rollout again).
            async for event in store.watch_rollouts(rollout_ids=["stuck"], after_event_id=0):
                if event.new_status == RolloutStatus.REQUEUING:
                    break
            return list(await store.query_attempts("stuck"))
        finally:
            await store.close()

    [attempt] = asyncio.run(asyncio.wait_for(given_up(), 120))
    assert attempt.status == AttemptStatus.UNRESPONSIVE


def test_cs_own_server_stops_only_after_recording_a_killed_runners_attempt(tmp_path: Path) -> None:
    # The strategy's own server is stopped right after the runner is killed: the attempt must be
    # given up before that (agl_core.execution.departures), not left running for a reconnect.
    data_dir = tmp_path / "store"
    strategy = ClientServerStrategy(data_dir=data_dir, keep_data=True, graceful_timeout=0.5, terminate_timeout=1.0)
    Trainer(algorithm=leave_a_stuck_attempt, strategy=strategy, n_runners=1, progress=False).fit(block_the_loop, [])
    [process] = strategy.processes
    assert process.exitcode == -signal.SIGTERM  # its loop was stuck: SIGINT could not end it
    ledger = asyncio.run(read_ledger(data_dir))
    assert [a.status for a in ledger.attempts["stuck"]] == [AttemptStatus.UNRESPONSIVE]
    [worker] = strategy.worker_ids
    assert ledger.workers[worker].status == "unknown"


# --- components ------------------------------------------------------------------------------------


class CountingHook(Hook):
    def __init__(self) -> None:
        self.ended = 0

    async def on_rollout_end(self, **_: Any) -> None:
        self.ended += 1


def test_components_from_names_dicts_classes_and_paths(tmp_path: Path) -> None:
    hook = CountingHook()
    seen: dict[str, Any] = {}

    @algo
    async def check(*, store: Any, train_dataset: list[Any], initial_resources: Any, rollout_config: Any) -> float:
        seen["initial"] = initial_resources
        await store.add_resources(initial_resources)
        outcomes = await run_rollouts(store, train_dataset)
        seen["configs"] = {o.rollout.config.max_attempts for o in outcomes}
        return sum(o.reward or 0.0 for o in outcomes)

    trainer = Trainer(
        algorithm=check,
        strategy={"type": "shm", "data_dir": tmp_path / "a"},
        n_runners=2,
        hooks=hook,
        initial_resources={"prompt": PromptTemplate(template="hi")},
        rollout_config={"max_attempts": 5, "timeout_seconds": 30},
        tracer="agl_core.tracer.base:NullTracer",
        progress=False,
    )
    assert trainer.fit("runtime_agents:EchoAgent", [{"reward": 0.5}, {"reward": 1.5}]).result == 2.0
    assert seen["configs"] == {5} and isinstance(seen["initial"]["prompt"], PromptTemplate)
    assert hook.ended == 2  # shm: the hook object itself ran in the runner threads

    assert isinstance(Trainer(algorithm="baseline", progress=False).algorithm, Baseline)
    assert Trainer(algorithm={"type": "baseline", "n_epochs": 2}).algorithm.n_epochs == 2
    assert isinstance(Trainer(algorithm=Baseline).algorithm, Baseline)
    assert isinstance(Trainer(algorithm=lambda: Baseline(n_epochs=3)).algorithm, Baseline)
    assert isinstance(Trainer(strategy="cs", n_runners=3).strategy, ClientServerStrategy)
    assert Trainer(strategy="cs", n_runners=3).strategy.n_runners == 3
    with pytest.raises(PluginError, match=r"no algorithm named 'nope'; installed: .*baseline"):
        Trainer(algorithm="nope")
    with pytest.raises(PluginError, match="no tracer named 'missing'"):
        Trainer(tracer="missing")
    with pytest.raises(TypeError, match="not a Algorithm"):
        Trainer(algorithm=lambda: "not an algorithm")
    assert runtime_agents.EchoAgent is EchoAgent


def test_sync_algorithm_gets_a_blocking_store(tmp_path: Path) -> None:
    @algo
    def count(*, store: Any, train_dataset: list[Any]) -> int:
        ids = [r.rollout_id for r in store.enqueue_rollouts([{"input": x} for x in train_dataset])]
        return sum(r.status == RolloutStatus.SUCCEEDED for r in store.wait_for_rollouts(ids, timeout=30))

    trainer = Trainer(algorithm=count, strategy=SharedMemoryStrategy(data_dir=tmp_path / "s"), progress=False)
    assert trainer.fit(parity_agent, [1, 2, 3]).result == 3


def test_dev_runs_the_baseline_and_refuses_slow_algorithms(tmp_path: Path) -> None:
    result = Trainer(strategy=SharedMemoryStrategy(data_dir=tmp_path / "d"), progress=False).dev(parity_agent, [0, 1])
    assert result.train.rollouts == 2 and result.train.mean_reward == 0.5

    class Slow(Algorithm):
        async def run(self, train_dataset: Any = None, val_dataset: Any = None) -> None:
            raise AssertionError("never runs")

    with pytest.raises(TypeError, match="dev-compatible"):
        Trainer(algorithm=Slow(), progress=False).dev(parity_agent, [0])


def test_progress_reports_done_failed_and_reward(tmp_path: Path) -> None:
    stream = io.StringIO()

    async def scenario() -> str:
        store = LmdbStore(tmp_path / "p")
        progress = Progress(store, stream=stream, live=False, interval=0.05)
        await progress.start()
        ok = await store.enqueue_rollout(1, mode="train")
        bad = await store.enqueue_rollout(2, mode="train")
        for status, reward in (("succeeded", 0.8), ("failed", None)):
            claimed = await store.dequeue_rollout(worker_id="w")
            await store.update_attempt(
                claimed.rollout_id,
                "latest",
                status=status,
                metadata={"reward": reward} if reward is not None else None,
            )
        await store.wait_for_rollouts([ok.rollout_id, bad.rollout_id], timeout=5)
        await progress.stop()  # catches up with the event log before the summary
        await store.close()
        return stream.getvalue()

    output = asyncio.run(scenario())
    assert output.splitlines()[-1].startswith("agl: finished train 2/2 done (1 ok, 1 failed), reward 0.800")


def test_initial_resources_reach_the_agent(tmp_path: Path) -> None:
    @prompt_rollout
    def answer(task: Any, prompt_template: PromptTemplate) -> float:
        return 1.0 if prompt_template.format(x=task) == f"value {task}" else 0.0

    trainer = Trainer(
        strategy=SharedMemoryStrategy(data_dir=tmp_path / "r"),
        initial_resources={"prompt": PromptTemplate(template="value {x}")},
        progress=False,
    )
    result = trainer.fit(answer, [1, 2])
    assert result.train.mean_reward == 1.0


def test_a_run_whose_every_rollout_failed_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    @prompt_rollout
    def needs_a_prompt(task: Any, prompt_template: PromptTemplate) -> float:
        return 1.0

    # No initial_resources: the agent cannot get its prompt template, so every attempt fails.
    trainer = Trainer(strategy=SharedMemoryStrategy(data_dir=tmp_path / "f"), progress=False)
    with caplog.at_level("WARNING", logger="agl_core.trainer.trainer"):
        result = trainer.fit(needs_a_prompt, [1, 2, 3])
    assert result.status == "failed"
    assert (result.train.rollouts, result.train.failed, result.mean_reward) == (3, 3, None)
    assert str(result) == "failed: train 3 rollouts: 0 succeeded, 3 failed, mean reward n/a"
    assert any("every rollout of this run failed" in r.getMessage() for r in caplog.records)
    with pytest.raises(RunFailedError, match="every rollout of the run failed"):
        result.raise_for_status()


def test_a_component_path_may_name_a_ready_made_instance() -> None:
    from agl_core.plugins import get_plugin_manager
    from agl_core.tracer import NullTracer, Tracer
    from agl_core.trainer.components import build

    pm = get_plugin_manager()
    tracer = build("runtime_agents:READY_TRACER", kind="tracers", base=Tracer, pm=pm)
    assert tracer is runtime_agents.READY_TRACER and isinstance(tracer, NullTracer)
    with pytest.raises(TypeError, match="takes no options"):
        build({"type": "runtime_agents:READY_TRACER", "x": 1}, kind="tracers", base=Tracer, pm=pm)
