"""``agl`` on the command line: remote runners (``agl runner``) serving an algorithm that runs
elsewhere (the ``cs`` strategy's ``algorithm`` role), against a real agl-server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.workers import until_connected

from agl_core.cli import SUBCOMMANDS, main
from agl_core.client import GrpcStore
from agl_core.trainer import Trainer
from agl_server.process import ServerProcess

HERE = Path(__file__).parent


def agl_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "agl_core.cli", *args]


def test_every_subcommand_module_has_the_interface() -> None:
    import importlib

    for name, module, help_text in SUBCOMMANDS:
        loaded = importlib.import_module(module)
        assert callable(loaded.add_arguments) and callable(loaded.run), name
        assert help_text
    with pytest.raises(SystemExit) as usage:
        main(["no-such-command"])
    assert usage.value.code == 2


def test_agl_runner_refuses_an_agent_it_cannot_load(server: ServerProcess) -> None:
    done = subprocess.run(
        agl_command("runner", "--server", server.address, "--agent", "no_such_module:agent"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "cannot load the agent 'no_such_module:agent'" in done.stderr and "No module named" in done.stderr


def test_remote_runners_serve_an_algorithm_running_elsewhere(server: ServerProcess) -> None:
    runners = subprocess.Popen(
        agl_command(
            "runner",
            "--server",
            server.address,
            "--agent",
            "runtime_agents:parity_agent",
            "--workers",
            "2",
            "--capacity",
            "2",
            "--tracer",
            "agl_core.tracer.base:NullTracer",
            "--worker-id",
            "remote",
        ),
        cwd=HERE,  # the agent's module is importable from the working directory
        env={**os.environ, "PYTHONPATH": ""},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The store has no push notification for worker records: check them until both runners have
        # said hello (so both are serving before the work comes), within a deadline.
        asyncio.run(asyncio.wait_for(until_connected(server.address, {"remote-0", "remote-1"}), 60))
        trainer = Trainer(
            strategy={"type": "cs", "role": "algorithm", "server_address": server.address},
            progress=False,
        )
        # The agent argument is not used here: the runners already serve it.
        result = trainer.fit("runtime_agents:parity_agent", list(range(40)))
        assert (result.train.succeeded, result.train.mean_reward) == (40, 0.5)
    finally:
        runners.send_signal(signal.SIGINT)  # the first signal drains: attempts in hand finish
        _, stderr = runners.communicate(timeout=60)
    assert runners.returncode == 0, stderr

    async def workers() -> dict[str, dict[str, object]]:
        store = GrpcStore(server.address)
        try:
            return {w.worker_id: w.heartbeat_stats for w in await store.query_workers()}
        finally:
            await store.close()

    records = asyncio.run(workers())
    assert sorted(records) == ["remote-0", "remote-1"]
    # Every rollout went to one of them, and both left cleanly (streams closed before they exited).
    assert sum(stats["assigned_attempts"] for stats in records.values()) == 40
    assert all(stats["connected"] is False for stats in records.values())


def test_agl_runner_refuses_a_malformed_selector(server: ServerProcess) -> None:
    done = subprocess.run(
        agl_command(
            "runner", "--server", server.address, "--agent", "runtime_agents:parity_agent", "--selector", "lang in (go"
        ),
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--label_selector 'lang in (go': a '(' is never closed" in done.stderr


def test_agl_runner_serves_only_its_namespace_queue_and_selector(server: ServerProcess) -> None:
    runner = subprocess.Popen(
        agl_command(
            "runner",
            "--server",
            server.address,
            "--agent",
            "runtime_agents:parity_agent",
            "--tracer",
            "agl_core.tracer.base:NullTracer",
            "--worker-id",
            "routed",
            "--namespace",
            "exp-cli",
            "--queue",
            "cli",
            "--selector",
            "lang=py",
        ),
        cwd=HERE,  # the agent's module is importable from the working directory
        stderr=subprocess.PIPE,
        text=True,
    )

    async def scenario() -> None:
        await asyncio.wait_for(until_connected(server.address, {"routed"}), 60)
        client = GrpcStore(server.address)
        exp = client.with_namespace("exp-cli")
        try:
            # Queued first, so a runner that ignored its routing would take these before the others.
            wrong_lang = await exp.enqueue_rollout(1, queue="cli", labels={"lang": "go"})
            wrong_queue = await exp.enqueue_rollout(2, labels={"lang": "py"})
            wrong_namespace = await client.enqueue_rollout(3, queue="cli", labels={"lang": "py"})
            mine = [(await exp.enqueue_rollout(i, queue="cli", labels={"lang": "py"})).rollout_id for i in range(4)]
            done = await exp.wait_for_rollouts(mine, timeout=60)
            assert sorted(r.status for r in done) == ["succeeded"] * 4
            for other in (wrong_lang, wrong_queue, wrong_namespace):
                again = await client.get_rollout(other.rollout_id)
                assert again is not None and again.status == "queuing", again
            worker = await exp.get_worker("routed")
            assert worker is not None
            assert (worker.namespace, worker.queues, worker.label_selector) == ("exp-cli", ["cli"], "lang=py")
        finally:
            await client.close()

    try:
        asyncio.run(scenario())
    finally:
        runner.send_signal(signal.SIGINT)
        _, stderr = runner.communicate(timeout=60)
    assert runner.returncode == 0, stderr
