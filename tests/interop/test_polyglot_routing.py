"""A polyglot fleet on one agl-server: labels route each task to the runners of its language.

Go runners (the Go ``calc-agent``, one on the Work stream and one long-polling) select
``lang=go``, TypeScript runners (the TS ``calc-agent``, likewise) ``lang=ts``, and ``agl runner``
workers in Python ``lang notin (go,ts)``: the rest. All serve the namespace ``polyglot``. Tasks of
each kind are enqueued at once into that namespace, plus Go-labelled decoys in the default
namespace and in a queue of the namespace that no runner serves; the Go and TS runners also serve
the queue ``tools``, which holds some of their tasks. Afterwards the store says who ran what:
every Go task on a Go runner, every TS task on a TS runner, the rest on Python, each rollout
exactly once (one attempt, one terminal event), every reward right, and the decoys untouched.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from agent_processes import Runners, python_runner_env
from support.waits import until

from agl_core.client import GrpcStore
from agl_core.emitter.reward import find_final_reward
from agl_core.types import AttemptStatus, PromptTemplate, RolloutStatus
from agl_server.process import ServerProcess

HERE = Path(__file__).parent
NAMESPACE = "polyglot"
TERSE = "Reply with only the number. {question}"
TERMINAL = {RolloutStatus.SUCCEEDED, RolloutStatus.FAILED, RolloutStatus.CANCELLED}
NULL_TRACER = "agl_core.tracer.base:NullTracer"
# Worker id -> the language of the process behind it.
WORKERS = {"go-stream": "go", "go-poll": "go", "ts-stream": "ts", "ts-poll": "ts", "py-0": "python", "py-1": "python"}


def task(n: int) -> dict[str, Any]:
    """A multiplication; every third one carries a wrong answer (reward 0, the others 1)."""
    a, b = 3 + n, 7 + 2 * n
    return {"question": f"What is {a} * {b}?", "answer": a * b + (1 if n % 3 == 0 else 0), "n": n}


def expected_reward(task: dict[str, Any]) -> float:
    return 0.0 if task["n"] % 3 == 0 else 1.0


Spec = tuple[str, dict[str, Any], dict[str, str], str]


def specs() -> dict[str, Spec]:
    """rollout id -> (the language that must run it, input, labels, queue); kinds interleaved so
    that no language's tasks are all at the head of a queue. The Go and TS runners also serve the
    queue "tools", the Python ones only "default"."""
    out: dict[str, Spec] = {}
    kinds = (("go", {"lang": "go"}), ("ts", {"lang": "ts"}), ("python", {}), ("python", {"lang": "python"}))
    for n in range(32):
        language, labels = kinds[n % len(kinds)]
        out[f"ro-{n:02d}"] = (language, task(n), labels, "default")
    for n in range(32, 36):
        language, labels = kinds[n % 2]
        out[f"ro-{n:02d}"] = (language, task(n), labels, "tools")
    return out


async def enqueue(address: str, tasks: dict[str, Spec]) -> None:
    async with GrpcStore(address) as default:
        # Decoys nobody serves: Go tasks of the default namespace, and of a queue no runner names.
        await default.enqueue_rollouts(
            [{"rollout_id": f"decoy-{i}", "input": task(i), "labels": {"lang": "go"}} for i in range(3)]
        )
        store = default.with_namespace(NAMESPACE)
        await store.enqueue_rollouts(
            [{"rollout_id": "decoy-queue", "input": task(0), "labels": {"lang": "go"}, "queue": "gpu"}]
        )
        await store.add_resources({"prompt": PromptTemplate(template=TERSE)})
        await store.enqueue_rollouts(
            [
                {"rollout_id": rid, "input": data, "labels": labels, "queue": queue}
                for rid, (_, data, labels, queue) in tasks.items()
            ]
        )


async def until_serving(address: str, worker_ids: set[str], timeout: float) -> None:
    """Return once every runner process has shown up in the namespace's worker records (hello on
    the Work stream, or a first long poll): it serves, and a stop signal now is a clean stop."""
    async with GrpcStore(address) as default:
        store = default.with_namespace(NAMESPACE)

        async def all_there() -> bool:
            return worker_ids <= {w.worker_id for w in await store.query_workers()}

        await until(all_there, timeout=timeout, what=f"workers {sorted(worker_ids)} serving {NAMESPACE!r}")


async def wait_done(address: str, ids: list[str], timeout: float) -> None:
    async with GrpcStore(address) as store:
        done = await store.wait_for_rollouts(ids, timeout=timeout)
    assert len(done) == len(ids), f"{len(ids) - len(done)} rollouts did not finish in {timeout:g}s"


async def audit(address: str) -> dict[str, Any]:
    """What the store says happened in the namespace: every rollout with its attempts and final
    reward, the terminal events of each rollout in its event log, the decoys of the default
    namespace."""
    async with GrpcStore(address) as default:
        store = default.with_namespace(NAMESPACE)
        last = int((await store.stats())["last_event_id"])
        terminal_events: Counter[str] = Counter()
        async with store.watch_rollouts(after_event_id=0) as watch:
            async for event in watch:
                if event.new_status in TERMINAL:
                    terminal_events[event.rollout_id] += 1
                if event.event_id >= last:
                    break
        rollouts = {r.rollout_id: r for r in await store.query_rollouts(limit=1000)}
        attempts = {rid: list(await store.query_attempts(rid)) for rid in rollouts}
        rewards = {rid: find_final_reward(await store.query_spans(rid)) for rid in rollouts}
        decoys = list(await default.query_rollouts(limit=1000))
        workers = {w.worker_id: w for w in await store.query_workers()}
    return {
        "workers": workers,
        "rollouts": rollouts,
        "attempts": attempts,
        "rewards": rewards,
        "terminal_events": terminal_events,
        "decoys": decoys,
    }


# Two agent builds (when this test runs first) and six runner processes on a loaded machine: more
# than the suite's default 300s may be needed, and the waits inside fail first with their reason.
@pytest.mark.timeout(600)
def test_labels_route_tasks_to_their_languages_runners(
    server: ServerProcess, go_agent: Path, ts_agent: Path, runners: Runners
) -> None:
    address = server.address
    tasks = specs()
    python_runner = ["runner", "--server", address, "--agent", "calc_agent:calc", "--tracer", NULL_TRACER]
    python_runner += ["--workers", "2", "--capacity", "2", "--worker-id", "py"]
    python_runner += ["--namespace", NAMESPACE, "--label-selector", "lang notin (go,ts)"]
    runners.start(
        "python",
        [sys.executable, "-m", "agl_core.cli", *python_runner],
        cwd=HERE,  # the agent's module is importable from the working directory
        env=python_runner_env(),
    )
    go = [str(go_agent), "-server", address, "-namespace", NAMESPACE, "-selector", "lang=go"]
    go += ["-queue", "default", "-queue", "tools"]
    runners.start("go-stream", [*go, "-worker-id", "go-stream"])
    runners.start("go-poll", [*go, "-worker-id", "go-poll", "-poll", "-wait", "2s"])
    ts = ["node", str(ts_agent), "--server", address, "--namespace", NAMESPACE, "--selector", "lang=ts"]
    ts += ["--queue", "default", "--queue", "tools"]
    runners.start("ts-stream", [*ts, "--worker-id", "ts-stream"])
    runners.start("ts-poll", [*ts, "--worker-id", "ts-poll", "--poll", "--wait-ms", "2000"])
    # All six serve before any work is queued, so every runner could take any task it is offered.
    asyncio.run(until_serving(address, set(WORKERS), timeout=120))
    asyncio.run(enqueue(address, tasks))

    asyncio.run(wait_done(address, list(tasks), timeout=240))
    for name in ("go-stream", "go-poll", "ts-stream", "ts-poll"):
        assert runners.stop(name, signal.SIGTERM) == 0, runners.log(name)
    assert runners.stop("python", signal.SIGINT) == 0, runners.log("python")
    facts = asyncio.run(audit(address))

    # Every rollout of the namespace ran exactly once, on a runner of its language, and earned
    # the reward its task says.
    assert set(facts["rollouts"]) == {*tasks, "decoy-queue"}
    ran_on: dict[str, str] = {}
    for rid, (language, data, labels, queue) in tasks.items():
        rollout = facts["rollouts"][rid]
        assert (rollout.status, rollout.namespace, rollout.labels, rollout.queue) == (
            RolloutStatus.SUCCEEDED,
            NAMESPACE,
            labels,
            queue,
        )
        assert facts["terminal_events"][rid] == 1, (rid, facts["terminal_events"][rid])
        [attempt] = facts["attempts"][rid]
        assert attempt.status == AttemptStatus.SUCCEEDED
        ran_on[rid] = attempt.worker_id
        assert WORKERS.get(attempt.worker_id) == language, f"{rid} ({labels}) ran on {attempt.worker_id}"
        assert facts["rewards"][rid] == expected_reward(data), rid

    # Each language's runners did their share, and each process's own count matches the store's.
    done_by = Counter(ran_on.values())
    per_language = Counter(language for language, _, _, _ in tasks.values())
    assert {lang: sum(n for w, n in done_by.items() if WORKERS[w] == lang) for lang in per_language} == per_language
    for name in ("go-stream", "go-poll", "ts-stream", "ts-poll"):
        stopped = re.search(r"succeeded=(\d+) failed=(\d+)", runners.log(name))
        assert stopped is not None, runners.log(name)
        assert (int(stopped[1]), int(stopped[2])) == (done_by[name], 0), name

    # The worker records say what each runner asked for.
    selectors = {"go": "lang=go", "ts": "lang=ts", "python": "lang notin (go,ts)"}
    records = facts["workers"]
    assert {w: records[w].label_selector for w in WORKERS} == {w: selectors[lang] for w, lang in WORKERS.items()}
    queues = {"go": ["default", "tools"], "ts": ["default", "tools"], "python": ["default"]}
    assert {w: list(records[w].queues) for w in WORKERS} == {w: queues[lang] for w, lang in WORKERS.items()}

    # The Go-labelled tasks of the default namespace, and of a queue no runner serves, were
    # served by nobody.
    assert sorted(r.rollout_id for r in facts["decoys"]) == ["decoy-0", "decoy-1", "decoy-2"]
    untouched = [*facts["decoys"], facts["rollouts"]["decoy-queue"]]
    assert all(r.status == RolloutStatus.QUEUING and r.attempt is None for r in untouched)
    assert facts["attempts"]["decoy-queue"] == []
