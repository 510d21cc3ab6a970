"""The Go and TypeScript example agents as runner processes, for the mixed-language tests: built
(or compiled) once per session, started with their output kept in a log, stopped at the end."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import agl_core
import agl_server

ROOT = Path(__file__).resolve().parents[2]
GO_MODULE = ROOT / "clients" / "go"
TS_PACKAGE = ROOT / "clients" / "ts"


def tool(name: str, setup: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"this test runs Go and TypeScript runners: {name} is not on PATH ({setup})")
    return path


def build_go_agent(out_dir: Path) -> Path:
    """clients/go/examples/calc-agent, built into ``out_dir``."""
    binary = out_dir / "calc-agent"
    go = tool("go", "install Go 1.25+, then `make setup-go`")
    subprocess.run([go, "build", "-o", str(binary), "./examples/calc-agent"], cwd=GO_MODULE, check=True, timeout=240)
    return binary


def build_ts_agent() -> Path:
    """clients/ts/examples/calc-agent.ts, compiled into clients/ts/dist."""
    node = tool("node", "install Node 20+, then `make setup-ts`")
    tsc = TS_PACKAGE / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        pytest.fail(f"{tsc} is missing: run `make setup-ts`")
    subprocess.run([node, str(tsc), "-p", "tsconfig.json"], cwd=TS_PACKAGE, check=True, timeout=240)
    return TS_PACKAGE / "dist" / "examples" / "calc-agent.js"


def python_runner_env() -> dict[str, str]:
    """The environment of an ``agl runner`` process: it imports agl_core and agl_server from where
    this test does (a worktree's PYTHONPATH, or the installed package), and nothing else of the
    test's path, so the agent module comes from the runner's working directory."""
    roots = dict.fromkeys(str(Path(m.__file__).resolve().parents[1]) for m in (agl_core, agl_server))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(roots)}


class Runners:
    """The runner processes of a test, stopped (and their output kept) at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: list[str], **kwargs: Any) -> None:
        log = (self.log_dir / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **kwargs)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop(self, name: str, signum: int) -> int:
        process = self.processes[name]
        process.send_signal(signum)
        return process.wait(timeout=60)

    def kill_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
