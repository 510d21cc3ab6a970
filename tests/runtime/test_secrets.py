"""Tokens never travel on a command line: the cs strategy and ``agl runner`` take them by
environment or file, so ``/proc/PID/cmdline`` (readable by every user) shows none."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.waits import until

from agl_core.algorithm import algo
from agl_core.client import GrpcStore
from agl_core.trainer import Trainer
from agl_plugins.strategies.cs import ClientServerStrategy
from agl_server.process import ServerProcess

HERE = Path(__file__).parent
TOKEN = "s3cret-token-for-the-test"


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_the_cs_strategy_gives_the_token_by_environment(tmp_path: Path) -> None:
    strategy = ClientServerStrategy(token=TOKEN, data_dir=tmp_path / "data", graceful_timeout=30)
    seen: dict[str, str] = {}

    @algo
    async def look(*, store: Any) -> int:
        assert strategy.server is not None and strategy.server.process is not None
        seen["server"] = cmdline(strategy.server.process.pid)
        for process in strategy.processes:
            assert process.pid is not None
            seen[process.name] = cmdline(process.pid)
        # The server does require the token: the strategy's own store sends it.
        async with GrpcStore(strategy.server.address, token="") as anonymous:
            try:
                await anonymous.query_rollouts()
            except Exception as exc:
                seen["anonymous"] = type(exc).__name__
        seen["rollouts"] = str(len(await store.query_rollouts()))  # the strategy's store has the token
        return 0

    Trainer(algorithm=look, strategy=strategy, n_runners=1, progress=False).fit("runtime_agents:parity_agent", [])
    assert "agl_server" in seen["server"] and "agl-runner-0" in seen
    assert all(TOKEN not in line for name, line in seen.items() if name != "rollouts"), seen
    assert (seen["anonymous"], seen["rollouts"]) == ("UnauthenticatedError", "0")


def test_agl_runner_takes_the_token_from_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    with ServerProcess(tmp_path / "data", env={**os.environ, "AGL_TOKEN": TOKEN}) as server:
        runner = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agl_core.cli",
                "runner",
                "--server",
                server.address,
                "--agent",
                "runtime_agents:parity_agent",
                "--tracer",
                "agl_core.tracer.base:NullTracer",
                "--worker-id",
                "filed",
                "--token-file",
                str(token_file),
            ],
            cwd=HERE,  # the agent's module is importable from the working directory
            env={k: v for k, v in os.environ.items() if not k.startswith("AGL_TOKEN")},
            stderr=subprocess.PIPE,
            text=True,
        )
        try:

            async def connected() -> None:
                async with GrpcStore(server.address, token=TOKEN) as store:

                    async def check() -> bool:
                        worker = await store.get_worker("filed")
                        return worker is not None and bool(worker.heartbeat_stats.get("connected"))

                    await until(check, timeout=120, what="the runner's hello with the token from its file")

            asyncio.run(connected())
            assert TOKEN not in cmdline(runner.pid)
        finally:
            runner.send_signal(signal.SIGINT)
            _, stderr = runner.communicate(timeout=60)
        assert runner.returncode == 0, stderr
