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
