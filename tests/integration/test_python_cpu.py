"""agl-server puts its Python threads on one CPU (agl_server.cpu_affinity) and leaves grpc's own
C++ threads on every CPU; AGL_SERVER_PYTHON_CPU chooses the CPU or turns it off."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from agl_core.client import GrpcStore
from agl_server.process import ServerProcess

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="pinning needs Linux CPU affinity and at least two CPUs to choose from",
)


def _cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def _threads(pid: int) -> list[tuple[int, str, set[int]]]:
    """(thread id, name, CPUs it may run on) of every thread of process ``pid``."""
    found = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except FileNotFoundError:
            continue  # it ended meanwhile
        name = re.search(r"^Name:\t(.*)$", status, re.M).group(1)  # type: ignore[union-attr]
        cpus = re.search(r"^Cpus_allowed_list:\t(.*)$", status, re.M).group(1)  # type: ignore[union-attr]
        found.append((int(tid), name, _cpu_list(cpus)))
    return found


async def _write_once(server: ServerProcess) -> None:
    # The store's writer thread starts with the first write, from the (pinned) event loop thread.
    async with GrpcStore(server.address) as store:
        await store.wait_ready()
        await store.enqueue_rollout({"task": 1})


def _python_and_native(pid: int) -> tuple[list[set[int]], list[set[int]]]:
    threads = _threads(pid)
    main_name = next(name for tid, name, _ in threads if tid == pid)
    # Python threads keep the process's name; grpc names its own (event_engine, grpc_global_timer).
    python = [cpus for _, name, cpus in threads if name == main_name]
    native = [cpus for _, name, cpus in threads if name.startswith(("event_engine", "grpc"))]
    return python, native


async def test_python_threads_share_the_cpu_the_server_names_and_grpc_threads_keep_all(tmp_path: Path) -> None:
    allowed = os.sched_getaffinity(0)
    with ServerProcess(tmp_path / "data") as server:
        assert server.process is not None
        await _write_once(server)
        logged = re.findall(r"Python threads run on CPU (\d+) \(AGL_SERVER_PYTHON_CPU=off", server.log_path.read_text())
        assert len(logged) == 1, server.log_tail()
        cpu = int(logged[0])
        assert cpu in allowed
        python, native = _python_and_native(server.process.pid)
        # The event loop, grpc's poller and the store's writer (started after the pinning) at least.
        assert len(python) >= 2
        assert all(cpus == {cpu} for cpus in python), python
        assert native and all(cpus == allowed for cpus in native), native


async def test_the_cpu_can_be_chosen(tmp_path: Path) -> None:
    chosen = max(os.sched_getaffinity(0))
    with ServerProcess(tmp_path / "data", env={**os.environ, "AGL_SERVER_PYTHON_CPU": str(chosen)}) as server:
        assert server.process is not None
        await _write_once(server)
        assert f"Python threads run on CPU {chosen} " in server.log_path.read_text()
        python, _ = _python_and_native(server.process.pid)
        assert python and all(cpus == {chosen} for cpus in python), python


async def test_pinning_can_be_turned_off(tmp_path: Path) -> None:
    allowed = os.sched_getaffinity(0)
    with ServerProcess(tmp_path / "data", env={**os.environ, "AGL_SERVER_PYTHON_CPU": "off"}) as server:
        assert server.process is not None
        await _write_once(server)
        assert "Python threads run on CPU" not in server.log_path.read_text()
        python, _ = _python_and_native(server.process.pid)
        assert python and all(cpus == allowed for cpus in python), python
