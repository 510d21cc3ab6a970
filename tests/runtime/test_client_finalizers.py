"""A collected ``openai`` async client must not cut another client's connection (the hang of the
shm strategy's runner threads: agl_core.runner.client_finalizers says how it happens).

The test makes the race happen on purpose, step by step: client 1 leaves an idle connection on
loop A; another thread with its own loop B collects client 1 (its socket's descriptor is closed);
client 2 on loop A opens a connection that gets the same descriptor number and waits for its
response; only then does loop B run whatever the collection scheduled, and only then does the
server answer client 2.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from support.openai_server import OpenAIServer
from support.waits import until

from agl_core.runner.client_finalizers import FINALIZING_CLIENTS, guard_client_finalizers, is_guarded
from agl_core.store.sync import _LoopThread

DEADLINE = 30.0


def _on(thread: _LoopThread, coro: Any) -> concurrent.futures.Future[Any]:
    """Run ``coro`` on the thread's loop (each runner of the shm strategy has a loop of its own)."""
    return asyncio.run_coroutine_threadsafe(coro, thread.loop)


@pytest.fixture
def loops() -> Iterator[tuple[_LoopThread, _LoopThread]]:
    a, b = _LoopThread("loop-a"), _LoopThread("loop-b")
    # Collection only where the test says: a collection on its own would run the finalizer at a
    # moment the test does not control. Earlier tests' garbage goes first, so that the test's own
    # collection frees client 1 alone.
    gc.collect()
    gc.disable()
    try:
        yield a, b
    finally:
        gc.enable()
        a.stop()
        b.stop()


def _hold_below(descriptor: int) -> list[int]:
    """Occupy every free descriptor below ``descriptor``, so that the next socket gets it: the
    lowest free number is the one a new file gets, and earlier tests may have left lower ones free."""
    held = []
    while (new := os.open(os.devnull, os.O_RDONLY)) < descriptor:
        held.append(new)
    os.close(new)
    return held


def _open_transports(loop: asyncio.AbstractEventLoop, port: int) -> list[asyncio.Transport]:
    """The socket transports of ``loop`` connected to ``port`` whose socket is still open."""
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.Transport) and getattr(obj, "_loop", None) is loop:
            sock = obj.get_extra_info("socket")
            peer = obj.get_extra_info("peername")
            if sock is not None and sock.fileno() != -1 and peer is not None and peer[1] == port:
                found.append(obj)
    return found


def test_a_client_collected_on_another_loop_leaves_the_new_connection_reading(
    loops: tuple[_LoopThread, _LoopThread],
) -> None:
    guard_client_finalizers()
    a, b = loops
    arrived, release = threading.Event(), threading.Event()
    requests = iter(range(1_000))

    def reply(body: Any, index: int) -> str:
        if next(requests) == 1:  # client 2's request: answered once the collection's aftermath has run
            arrived.set()
            release.wait(DEADLINE)
        return "answer"

    with OpenAIServer(reply=reply) as llm:

        async def ask(client: openai.AsyncOpenAI) -> str:
            response = await client.chat.completions.create(
                model=llm.model, messages=[{"role": "user", "content": "hi"}]
            )
            return response.choices[0].message.content or ""

        async def first_client() -> int:
            client = openai.AsyncOpenAI(base_url=llm.base_url, api_key="unused", max_retries=0)
            assert await ask(client) == "answer"
            (transport,) = _open_transports(asyncio.get_running_loop(), llm.port)
            return transport.get_extra_info("socket").fileno()  # type: ignore[no-any-return]

        # Client 1 is garbage once first_client returns (only its own cycles hold it).
        descriptor = _on(a, first_client()).result(DEADLINE)

        proceed, collected = threading.Event(), threading.Event()

        async def collect_elsewhere() -> None:
            gc.collect()  # client 1 and its idle socket are collected on loop B's thread
            collected.set()
            # Loop B is busy (blocked, on purpose) until client 2 waits for its response; whatever
            # the collection scheduled on this loop runs only after that.
            proceed.wait(DEADLINE)
            others = asyncio.all_tasks() - {asyncio.current_task()}
            await asyncio.gather(*others, return_exceptions=True)

        aftermath = _on(b, collect_elsewhere())
        assert collected.wait(DEADLINE)

        client2 = openai.AsyncOpenAI(base_url=llm.base_url, api_key="unused", max_retries=0)
        held = _hold_below(descriptor)
        try:
            answer = _on(a, ask(client2))
            assert arrived.wait(DEADLINE)
        finally:
            for fd in held:
                os.close(fd)
        transports = _open_transports(a.loop, llm.port)
        assert len(transports) == 1
        (transport,) = transports
        # The race needs the new connection on the old descriptor number.
        assert transport.get_extra_info("socket").fileno() == descriptor

        async def reading() -> bool:
            return transport.is_reading()

        _on(a, until(reading, timeout=DEADLINE, what="client 2 waiting for its response")).result(DEADLINE)

        proceed.set()
        aftermath.result(DEADLINE)
        release.set()
        # Unguarded, openai's finalizer closes client 1's transport from loop B, which unregisters
        # client 2's descriptor from loop A: the response is never read and this times out.
        assert answer.result(DEADLINE) == "answer"
        _on(a, client2.close()).result(DEADLINE)


RUNNER_SCRIPT = """
import asyncio, importlib, json, sys, tempfile
from agl_core import LmdbStore
from agl_core.litagent import rollout
from agl_core.runner import DequeueSource, Runner
from agl_core.runner.client_finalizers import FINALIZING_CLIENTS, is_guarded

before = sorted(m for m in FINALIZING_CLIENTS if m in sys.modules)
seen = {}

@rollout
async def agent(task):
    # Imported by the agent, after the runner started: the post-import hook guards them.
    for module, name in FINALIZING_CLIENTS.items():
        try:
            seen[module] = is_guarded(getattr(importlib.import_module(module), name))
        except ImportError:
            pass
    return 1.0

async def main():
    store = LmdbStore(tempfile.mkdtemp())
    await store.enqueue_rollouts([{"input": 1}])
    runner = Runner(agent, store=store, source=DequeueSource(store, worker_id="w"), max_rollouts=1)
    await runner.run()
    await store.close()

asyncio.run(main())
print(json.dumps({"before": before, "seen": seen}))
"""


def test_a_runner_guards_the_libraries_its_agent_imports_later() -> None:
    # A process of its own: this one has the guard installed by the test above.
    done = subprocess.run(
        [sys.executable, "-c", RUNNER_SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["before"] == []  # none loaded when the runner started
    assert report["seen"]["openai._base_client"] is True  # openai is a dependency of agl
    assert all(report["seen"].values()), report["seen"]


@pytest.mark.parametrize("module", sorted(FINALIZING_CLIENTS))
def test_each_listed_library_still_has_the_finalizer_it_is_guarded_against(module: str) -> None:
    """A release that renames the class or drops __del__ shows here, not as a silent no-op."""
    imported = pytest.importorskip(module, reason=f"{module.split('.')[0]} is not installed")
    guard_client_finalizers()
    cls = getattr(imported, FINALIZING_CLIENTS[module])
    assert is_guarded(cls)
