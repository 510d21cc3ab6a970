"""A lone source's writes commit on the event loop (Writer.submit with ``source``): only when the
same source wrote last, nothing is queued and every earlier group is delivered; anything else goes
to the writer thread as always, and a write the loop cannot finish (the map full) is handed to it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import lmdb
import pytest
from support.writer_hold import writer_held

from agl_core.store.lmdb.writer import Writer, inline_setting


class Recorder:
    def __init__(self) -> None:
        self.published: list[str] = []
        self.aborts = 0

    def on_commit(self, effects: list[list[str]]) -> None:
        self.published.extend(name for effect in effects for name in effect)

    def on_abort(self) -> None:
        self.aborts += 1


def put(key: bytes, value: bytes = b"v") -> Any:
    """Writes ``key``; returns the thread it ran on."""

    def op(txn: lmdb.Transaction, effects: list[str]) -> int:
        txn.put(key, value)
        effects.append(key.decode())
        return threading.get_ident()

    return op


@pytest.fixture
def env(tmp_path: Path) -> Any:
    environment = lmdb.open(str(tmp_path / "env"), map_size=1 << 24)
    yield environment
    environment.close()


def make_writer(env: lmdb.Environment, recorder: Recorder, inline: bool = True) -> Writer[list[str]]:
    return Writer(env, asyncio.get_running_loop(), list, recorder.on_commit, on_abort=recorder.on_abort, inline=inline)


def value(env: lmdb.Environment, key: bytes) -> bytes | None:
    with env.begin() as txn:
        found = txn.get(key)
    return bytes(found) if found is not None else None


async def test_a_lone_sources_second_write_commits_before_submit_returns(env: lmdb.Environment) -> None:
    recorder = Recorder()
    writer = make_writer(env, recorder)
    loop_thread = threading.get_ident()
    stream = object()
    try:
        first = await writer.submit(put(b"a"), stream)
        assert first != loop_thread  # nothing says yet that the source writes alone
        second = writer.submit(put(b"b"), stream)
        assert second.done() and second.result() == loop_thread
        assert value(env, b"b") == b"v"  # committed, not only run
        assert recorder.published == ["a", "b"]  # its effects published before the caller heard of it
        assert (writer.groups, writer.ops, writer.inline_groups) == (2, 2, 1)
    finally:
        writer.close()


async def test_another_write_in_between_sends_the_next_one_to_the_writer_thread(env: lmdb.Environment) -> None:
    recorder = Recorder()
    writer = make_writer(env, recorder)
    loop_thread = threading.get_ident()
    stream, other = object(), object()
    try:
        await writer.submit(put(b"a"), stream)
        await writer.submit(put(b"x"))  # an ordinary write, from no stream
        assert await writer.submit(put(b"b"), stream) != loop_thread
        await writer.submit(put(b"y"), other)
        assert await writer.submit(put(b"c"), stream) != loop_thread
        assert writer.submit(put(b"d"), stream).result() == loop_thread
        assert writer.inline_groups == 1
    finally:
        writer.close()


async def test_a_write_while_an_earlier_one_is_in_flight_waits_for_the_writer_thread(
    env: lmdb.Environment,
) -> None:
    recorder = Recorder()
    writer = make_writer(env, recorder)
    loop_thread = threading.get_ident()
    stream = object()
    try:
        await writer.submit(put(b"a"), stream)
        # The writer is busy with a group: the source's next write queues behind it.
        async with writer_held(writer) as blocker:
            queued = writer.submit(put(b"b"), stream)
            assert not queued.done()
        await blocker
        assert await queued != loop_thread
        assert writer.inline_groups == 0
    finally:
        writer.close()


async def test_a_write_does_not_overtake_a_group_committed_but_not_yet_delivered(env: lmdb.Environment) -> None:
    recorder = Recorder()
    committed = threading.Event()
    writer = Writer(
        env,
        asyncio.get_running_loop(),
        list,
        recorder.on_commit,
        observers=[lambda operations, seconds, commit_seconds: committed.set()],
    )
    loop_thread = threading.get_ident()
    stream = object()
    try:
        await writer.submit(put(b"a"))
        committed.clear()
        first = writer.submit(put(b"b"), stream)  # to the writer thread: the last write was no stream's
        # Block this loop until the writer has committed it: its delivery cannot run meanwhile.
        assert committed.wait(30), "the writer never committed"
        second = writer.submit(put(b"c"), stream)
        assert not first.done() and not second.done()
        assert await first != loop_thread and await second != loop_thread
        assert recorder.published == ["a", "b", "c"]  # in commit order
        assert writer.inline_groups == 0
    finally:
        writer.close()


async def test_with_inline_off_every_write_goes_to_the_writer_thread(env: lmdb.Environment) -> None:
    writer = make_writer(env, Recorder(), inline=False)
    loop_thread = threading.get_ident()
    stream = object()
    try:
        threads = [await writer.submit(put(b"k%d" % i), stream) for i in range(5)]
        assert loop_thread not in threads
        assert writer.inline_groups == 0
    finally:
        writer.close()


async def test_a_lone_write_that_fills_the_map_is_grown_for_by_the_writer_thread(tmp_path: Path) -> None:
    environment = lmdb.open(str(tmp_path / "small"), map_size=1 << 20)
    recorder = Recorder()
    writer = make_writer(environment, recorder)
    loop_thread = threading.get_ident()
    stream = object()
    try:
        await writer.submit(put(b"a"), stream)
        big = b"x" * (3 << 20)  # more than the whole map
        future = writer.submit(put(b"big", big), stream)
        assert not future.done()  # the loop's attempt was rolled back and handed over
        assert await future != loop_thread
        assert value(environment, b"big") == big
        assert environment.info()["map_size"] > 1 << 20
        assert recorder.aborts >= 1 and recorder.published == ["a", "big"]
        assert writer.inline_groups == 0
    finally:
        writer.close()
        environment.close()


def test_the_setting_is_on_by_default_and_refuses_what_it_does_not_know(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGL_INLINE_COMMITS", raising=False)
    assert inline_setting() is True
    monkeypatch.setenv("AGL_INLINE_COMMITS", "off")
    assert inline_setting() is False
    assert inline_setting(True) is True  # an explicit choice wins
    monkeypatch.setenv("AGL_INLINE_COMMITS", "yes")
    with pytest.raises(ValueError, match=r"AGL_INLINE_COMMITS='yes': give 'on'"):
        inline_setting()
