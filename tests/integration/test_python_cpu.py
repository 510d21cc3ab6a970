"""agl-server pins its Python threads to one CPU while it is busy and spreads them again when idle
(agl_server.cpu_affinity); grpc's own C++ threads keep every CPU throughout. AGL_SERVER_PYTHON_CPU
chooses the CPU or turns the pinning off."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import grpc
import pytest
from support.http_listener import scrape
from support.waits import until

from agl_core import new_span
from agl_core.client import GrpcStore
from agl_core.proto import store_pb2 as s
from agl_server.process import ServerProcess

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="pinning needs Linux CPU affinity and at least two CPUs to choose from",
)
ALLOWED = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
PINNED = re.compile(r"busy \([\d.]+ cores\): Python threads run on CPU (\d+) \(AGL_SERVER_PYTHON_CPU=off")
SPREAD = "Python threads spread over every CPU again"


def _cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def _threads(pid: int) -> tuple[list[set[int]], list[set[int]]]:
    """The CPUs each Python thread of process ``pid`` may run on, and each of grpc's C++ threads.
    Python threads keep the process's name; grpc names its own (event_engine, grpc_global_timer)."""
    found = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):  # it ended meanwhile
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
            name = re.search(r"^Name:\t(.*)$", status, re.M).group(1)  # type: ignore[union-attr]
            cpus = re.search(r"^Cpus_allowed_list:\t(.*)$", status, re.M).group(1)  # type: ignore[union-attr]
            found.append((int(tid), name, _cpu_list(cpus)))
    main_name = next(name for tid, name, _ in found if tid == pid)
    python = [cpus for _, name, cpus in found if name == main_name]
    native = [cpus for _, name, cpus in found if name.startswith(("event_engine", "grpc"))]
    return python, native


@contextlib.asynccontextmanager
async def _busy(server: ServerProcess) -> AsyncIterator[Callable[[], float]]:
    """Keep the server busy with four IngestSpans streams of 200-span batches (bytes built once:
    the client costs little) while the block runs. Yields a function that gives the server's CPU
    use over the last second, in cores, as /proc reads it."""
    async with GrpcStore(server.address) as store:
        await store.wait_ready()
        await store.enqueue_rollout({"task": "load"})
        rollout = await store.dequeue_rollout(worker_id="load")
        assert rollout is not None and rollout.attempt is not None
        ids = (rollout.rollout_id, rollout.attempt.attempt_id)
    batches = [
        s.IngestSpansRequest(
            batch_id=b, spans=[new_span(f"s{b}-{i}", rollout_id=ids[0], attempt_id=ids[1]) for i in range(200)]
        ).SerializeToString()
        for b in range(50)
    ]
    stop = asyncio.Event()

    async def stream(channel: grpc.aio.Channel) -> None:
        call = channel.stream_stream(
            "/agl.v1.LightningStoreService/IngestSpans",
            request_serializer=None,
            response_deserializer=s.IngestSpansResponse.FromString,
        )()
        while not stop.is_set():  # resent batches are duplicates: still parsed, checked and acked
            for batch in batches:
                await call.write(batch)
                await call.read()
        await call.done_writing()

    clock = os.sysconf("SC_CLK_TCK")
    samples: list[tuple[float, float]] = []

    def cores() -> float:
        fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()  # type: ignore[union-attr]
        samples.append((time.monotonic(), (int(fields[11]) + int(fields[12])) / clock))
        recent = [x for x in samples if x[0] >= samples[-1][0] - 1.0]
        (t0, c0), (t1, c1) = recent[0], recent[-1]
        return (c1 - c0) / (t1 - t0) if t1 - t0 >= 0.5 else 0.0

    async with grpc.aio.insecure_channel(server.address) as channel:
        tasks = [asyncio.ensure_future(stream(channel)) for _ in range(4)]
        try:
            yield cores
        finally:
            stop.set()
            await asyncio.gather(*tasks)


def _pinned_to(server: ServerProcess) -> list[int]:
    return [int(cpu) for cpu in PINNED.findall(server.log_path.read_text())]


async def test_busy_pins_the_python_threads_and_idle_spreads_them_again(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data", args=["--http-port", "0"]) as server:
        async with aiohttp.ClientSession() as http:
            await _busy_then_idle(server, http)


async def _busy_then_idle(server: ServerProcess, http: aiohttp.ClientSession) -> None:
    assert server.process is not None
    pid = server.process.pid
    python, native = _threads(pid)
    assert python and all(cpus == ALLOWED for cpus in python), "pinned before any load"
    assert (await scrape(http, server))["agl_server_python_cpu"] == -1

    async with _busy(server):

        async def pinned() -> bool:
            return bool(_pinned_to(server))

        await until(pinned, timeout=60, what="pinning under load")
        (cpu,) = _pinned_to(server)
        assert cpu in ALLOWED
        python, native = _threads(pid)
        # The event loop, grpc's poller and the store's writer at least; grpc's C++ threads not.
        assert len(python) >= 3 and all(cpus == {cpu} for cpus in python), python
        assert native and all(cpus == ALLOWED for cpus in native), native
        assert (await scrape(http, server))["agl_server_python_cpu"] == cpu

    async def spread() -> bool:
        return SPREAD in server.log_path.read_text()

    await until(spread, timeout=60, what="spreading once idle")
    python, _ = _threads(pid)
    assert all(cpus == ALLOWED for cpus in python), python
    assert (await scrape(http, server))["agl_server_python_cpu"] == -1


async def test_the_cpu_can_be_chosen(tmp_path: Path) -> None:
    chosen = max(ALLOWED)
    with ServerProcess(tmp_path / "data", env={**os.environ, "AGL_SERVER_PYTHON_CPU": str(chosen)}) as server:
        assert server.process is not None
        async with _busy(server):

            async def pinned() -> bool:
                return bool(_pinned_to(server))

            await until(pinned, timeout=60, what="pinning under load")
            assert _pinned_to(server) == [chosen]
            python, _ = _threads(server.process.pid)
            assert python and all(cpus == {chosen} for cpus in python), python


async def test_pinning_can_be_turned_off(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data", env={**os.environ, "AGL_SERVER_PYTHON_CPU": "off"}) as server:
        assert server.process is not None
        async with _busy(server) as cores:
            busy_since: list[float] = []

            async def busy_for_two_samples() -> bool:
                # Busy enough to be pinned (half a core) for over two of the server's 1 s samples.
                if cores() < 0.5:
                    busy_since.clear()
                    return False
                busy_since.append(time.monotonic())
                return busy_since[-1] - busy_since[0] > 2.5

            await until(busy_for_two_samples, timeout=60, what="the server using half a core for 2.5 s")
            assert not _pinned_to(server)
            python, _ = _threads(server.process.pid)
            assert python and all(cpus == ALLOWED for cpus in python), python
