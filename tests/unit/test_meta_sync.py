"""The meta page's sync deferred (agl_core/store/lmdb/meta_sync.py): commits leave it out, and a
group's callers hear of their writes only after a sync of the data file that follows the commit,
run by the writer when nothing else waits and by a thread that never takes the GIL when something
does. A failed sync fails the writes it should have made durable, and every later one."""

from __future__ import annotations

import asyncio
import errno
import os
import select
import threading
from pathlib import Path
from typing import Any

import lmdb
import pytest
from support.writer_hold import writer_held

from agl_core.errors import InternalError
from agl_core.store.lmdb import LmdbStore, meta_sync
from agl_core.store.lmdb.writer import Writer
from agl_core.threads import GilFreeThread

pytestmark = pytest.mark.skipif(
    not meta_sync.deferred_available(), reason="the data syncer (data_sync.pyx) is not built in this install"
)


def wait_readable(fd: int, seconds: float = 30) -> None:
    readable, _, _ = select.select([fd], [], [], seconds)
    assert readable, f"the syncer did not report within {seconds} s"


def test_the_mode_follows_the_argument_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(meta_sync.ENV, raising=False)
    assert meta_sync.choose(sync=True) == "commit"  # LMDB's own way unless asked
    assert meta_sync.choose(sync=True, name="deferred") == "deferred"
    assert meta_sync.choose(sync=False) is None  # nothing is synced, so nothing to defer
    monkeypatch.setenv(meta_sync.ENV, "deferred")
    assert meta_sync.choose(sync=True) == "deferred"
    assert meta_sync.choose(sync=True, name="commit") == "commit"
    monkeypatch.setenv(meta_sync.ENV, "later")
    with pytest.raises(ValueError, match=r"AGL_META_SYNC='later': give 'deferred' or 'commit'"):
        meta_sync.choose(sync=True)
    with pytest.raises(ValueError, match=r"AGL_META_SYNC='later'"):
        meta_sync.choose(sync=False)  # a typo is refused even where it would change nothing


def test_the_syncer_reports_the_commits_each_sync_covers(tmp_path: Path) -> None:
    from agl_core.store.lmdb.data_sync import DataSyncer  # type: ignore[import-not-found]

    data = tmp_path / "data.mdb"
    data.write_bytes(b"x" * 4096)
    syncer = DataSyncer(data)
    thread = GilFreeThread(target=syncer.run, name="test-syncer")
    thread.start()
    try:
        assert syncer.state() == (0, 0)
        syncer.request(3)
        wait_readable(syncer.notify_fd)
        assert syncer.state() == (3, 0)
        syncer.sync_now(5)  # on this thread: no notification, the state says it at once
        assert syncer.state() == (5, 0)
        syncer.request(4)  # already covered: the number reported never goes back
        wait_readable(syncer.notify_fd)
        assert syncer.state() == (5, 0)
    finally:
        syncer.close()
        thread.join(30)
    assert not thread.is_alive()
    syncer.release()


def test_a_failed_sync_is_reported_and_stays_failed(tmp_path: Path) -> None:
    from agl_core.store.lmdb.data_sync import DataSyncer  # type: ignore[import-not-found]

    fifo = tmp_path / "not-a-file"
    os.mkfifo(fifo)  # fdatasync of a pipe fails (EINVAL): a real failed sync, no disk to break
    syncer = DataSyncer(fifo)
    thread = GilFreeThread(target=syncer.run, name="test-syncer")
    thread.start()
    try:
        syncer.request(1)
        wait_readable(syncer.notify_fd)
        assert syncer.state() == (0, errno.EINVAL)
        syncer.sync_now(2)
        assert syncer.state() == (0, errno.EINVAL)
    finally:
        syncer.close()
        thread.join(30)
    syncer.release()


def put(key: bytes) -> Any:
    def op(txn: lmdb.Transaction, effects: list[str]) -> bytes:
        txn.put(key, b"v")
        effects.append(key.decode())
        return key

    return op


def open_env(path: Path) -> lmdb.Environment:
    return lmdb.open(str(path), map_size=1 << 24, sync=True, metasync=False)


async def write_while_held(writer: Writer[list[str]], keys: list[bytes]) -> list[Any]:
    """Queue one write per key while the writer is held inside an earlier one, so that its group
    commits with more writes waiting (its sync goes to the syncer thread); the outcomes of the
    holding write and of the keys' writes."""
    async with writer_held(writer) as blocker:
        futures = [writer.submit(put(key)) for key in keys]
    return await asyncio.gather(blocker, *futures, return_exceptions=True)


async def test_writes_are_answered_after_their_sync_in_commit_order(tmp_path: Path) -> None:
    env = open_env(tmp_path / "env")
    published: list[list[str]] = []
    writer = Writer(
        env,
        asyncio.get_running_loop(),
        list,
        lambda effects: published.append([name for effect in effects for name in effect]),
        deferred_sync=str(tmp_path / "env" / "data.mdb"),
    )
    keys = [f"k{i:03}".encode() for i in range(40)]
    try:
        assert await write_while_held(writer, keys[:20]) == [None, *keys[:20]]
        # One at a time: nothing else waits, so the writer syncs each commit itself.
        for key in keys[20:]:
            assert await writer.submit(put(key)) == key
        inline, handed_off = writer.syncs  # type: ignore[misc]
        assert handed_off >= 1, "no commit's sync went to the syncer thread"
        assert inline >= 20
        assert inline + handed_off == writer.groups  # the holding write's group included
        # Every commit's effects were published, each once, in the order of the commits.
        assert [name for names in published for name in names] == [key.decode() for key in keys]
        syncer_threads = [t for t in threading.enumerate() if t.name == "agl-lmdb-syncer"]
        assert syncer_threads and all(isinstance(t, GilFreeThread) for t in syncer_threads)
    finally:
        await asyncio.to_thread(writer.close)
        writer.detach()
    env.close()
    reopened = lmdb.open(str(tmp_path / "env"), readonly=True)
    with reopened.begin() as txn:
        assert [bytes(key) for key, _ in txn.cursor()] == keys
    reopened.close()


async def test_a_failed_sync_fails_the_writes_it_covered_and_every_later_one(tmp_path: Path) -> None:
    env = open_env(tmp_path / "env")
    fifo = tmp_path / "unsyncable"
    os.mkfifo(fifo)
    writer = Writer(env, asyncio.get_running_loop(), list, lambda effects: None, deferred_sync=str(fifo))
    try:
        held = await write_while_held(writer, [b"a", b"b", b"c"])
        assert len(held) == 4 and all(isinstance(outcome, InternalError) for outcome in held), held
        assert "could not sync its data file to disk" in str(held[0])
        with pytest.raises(InternalError, match="restart agl-server"):
            await writer.submit(put(b"d"))  # synced inline: the failure is sticky
    finally:
        await asyncio.to_thread(writer.close)
        writer.detach()
    env.close()


@pytest.mark.parametrize("mode", ["deferred", "commit"])
async def test_the_store_opens_its_environment_for_the_mode(tmp_path: Path, mode: str) -> None:
    store = LmdbStore(tmp_path / "data", meta_sync=mode)
    backend = store.backend
    assert backend.meta_sync == mode
    assert backend.env.flags()["metasync"] is (mode == "commit")
    rollouts = await asyncio.gather(*(store.enqueue_rollout(input={"n": n}) for n in range(50)))
    assert backend.meta_syncs is None if mode == "commit" else sum(backend.meta_syncs) == backend.writer_counts[0]
    await store.close()
    again = LmdbStore(tmp_path / "data", meta_sync=mode)
    stored = {rollout.rollout_id for rollout in await again.query_rollouts()}
    assert stored == {rollout.rollout_id for rollout in rollouts}
    await again.close()


def test_without_sync_nothing_is_deferred(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "data", sync=False)
    assert store.backend.meta_sync is None
    assert store.backend.env.flags()["metasync"] is False
