"""A Python algorithm trains with Python, Go and TypeScript runners on one agl-server at once.

The built-in ``baseline`` algorithm runs through the Trainer (``cs`` strategy, ``algorithm``
role: the algorithm here, the runners elsewhere) against a real agl-server. Four runner processes
serve it on their Work streams: two ``agl runner`` workers (tests/interop/calc_agent.py), the Go
``calc-agent`` binary (built here) and the TypeScript ``calc-agent`` (compiled here). They all
solve the same arithmetic tasks with the same prompt and grading, so every rollout's reward is
known in advance whichever language ran it.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from agent_processes import Runners, python_runner_env
from calc_agent import calc
from support.workers import until_connected

from agl_core.client import GrpcStore
from agl_core.tracer import NullTracer
from agl_core.trainer import Trainer
from agl_core.types import AttemptStatus, PromptTemplate, RolloutStatus
from agl_plugins.algorithms.baseline import Baseline
from agl_server.process import ServerProcess

HERE = Path(__file__).parent
TERSE = "Reply with only the number. {question}"
TERMINAL = {RolloutStatus.SUCCEEDED, RolloutStatus.FAILED, RolloutStatus.CANCELLED}
# The Python agent returns its reward; there are no LLM calls to trace.
NULL_TRACER = "agl_core.tracer.base:NullTracer"


def tasks(count: int, offset: int) -> list[dict[str, Any]]:
    """Multiplications; every third one carries a wrong answer (reward 0, the others 1)."""
    out = []
    for i in range(offset, offset + count):
        a, b = 3 + i, 7 + 2 * i
        out.append({"question": f"What is {a} * {b}?", "answer": a * b + (1 if i % 3 == 0 else 0), "n": i})
    return out


def expected_reward(task: dict[str, Any]) -> float:
    return 0.0 if task["n"] % 3 == 0 else 1.0


async def audit(address: str) -> dict[str, Any]:
    """What the store says happened: every rollout with its attempts, the terminal events of each
    rollout in the event log, and the worker records."""
    async with GrpcStore(address) as store:
        last = int((await store.stats())["last_event_id"])
        terminal_events: Counter[str] = Counter()
        async with store.watch_rollouts(after_event_id=0) as watch:
            async for event in watch:
                if event.new_status in TERMINAL:
                    terminal_events[event.rollout_id] += 1
                if event.event_id >= last:
                    break
        rollouts = list(await store.query_rollouts(limit=1000))
        attempts = {r.rollout_id: list(await store.query_attempts(r.rollout_id)) for r in rollouts}
        workers = {w.worker_id: w for w in await store.query_workers()}
    return {"rollouts": rollouts, "attempts": attempts, "terminal_events": terminal_events, "workers": workers}


def test_baseline_trains_with_python_go_and_typescript_runners(
    server: ServerProcess, go_agent: Path, ts_agent: Path, runners: Runners
) -> None:
    address = server.address
    python_runner = ["runner", "--server", address, "--agent", "calc_agent:calc", "--workers", "2", "--capacity", "2"]
    runners.start(
        "python",
        [sys.executable, "-m", "agl_core.cli", *python_runner, "--worker-id", "py", "--tracer", NULL_TRACER],
        cwd=HERE,  # the agent's module is importable from the working directory
        env=python_runner_env(),
    )
    runners.start("go", [str(go_agent), "-server", address, "-worker-id", "go-0", "-concurrency", "2"])
    runners.start("ts", ["node", str(ts_agent), "--server", address, "--worker-id", "ts-0", "--concurrency", "2"])
    workers = {"py-0": "python", "py-1": "python", "go-0": "go", "ts-0": "typescript"}
    # Every runner has said hello before any work is queued: the first claims of all four are then
    # served from a queue far longer than their capacities (8 in all), so each gets some.
    asyncio.run(asyncio.wait_for(until_connected(address, set(workers)), 90))

    train, val = tasks(32, 0), tasks(12, 100)
    trainer = Trainer(
        algorithm=Baseline(timeout=120),
        strategy={"type": "cs", "role": "algorithm", "server_address": address},
        initial_resources={"prompt": PromptTemplate(template=TERSE)},
        tracer=NullTracer,
        progress=False,
    )
    result = trainer.fit(calc, train, val)

    # The algorithm read every reward right, whichever language's runner earned it.
    for split, dataset in ((result.train, train), (result.val, val)):
        assert (split.rollouts, split.succeeded, split.failed) == (len(dataset), len(dataset), 0)
        assert [o.reward for o in split.outcomes] == [expected_reward(t) for t in dataset]
        assert [o.rollout.input for o in split.outcomes] == dataset

    # The runners leave cleanly; each one's own count matches what the store recorded for it.
    assert runners.stop("go", signal.SIGTERM) == 0, runners.log("go")
    assert runners.stop("ts", signal.SIGTERM) == 0, runners.log("ts")
    assert runners.stop("python", signal.SIGINT) == 0, runners.log("python")
    facts = asyncio.run(audit(address))

    # Every rollout accounted for exactly once: one attempt each, one terminal status each.
    rollouts = facts["rollouts"]
    assert len(rollouts) == len(train) + len(val)
    assert all(r.status == RolloutStatus.SUCCEEDED for r in rollouts)
    assert all(facts["terminal_events"][r.rollout_id] == 1 for r in rollouts), facts["terminal_events"]
    attempts = facts["attempts"]
    assert all(len(a) == 1 and a[0].status == AttemptStatus.SUCCEEDED for a in attempts.values())

    # Each language's runners did some of the work, as their worker records say who they are.
    records = facts["workers"]
    assert {w: records[w].heartbeat_stats["language"] for w in workers} == workers
    done_by = Counter(a[0].worker_id for a in attempts.values())
    assert set(done_by) <= set(workers), done_by
    per_language = Counter({language: 0 for language in workers.values()})
    for worker_id, count in done_by.items():
        per_language[workers[worker_id]] += count
    assert all(count > 0 for count in per_language.values()), per_language
    assert all(records[w].heartbeat_stats["connected"] is False for w in workers)
    for name, worker_id in (("go", "go-0"), ("ts", "ts-0")):
        stopped = re.search(r"succeeded=(\d+) failed=(\d+)", runners.log(name))
        assert stopped is not None, runners.log(name)
        assert (int(stopped[1]), int(stopped[2])) == (done_by[worker_id], 0)
