"""The store's writer runs a group's operations straight in one transaction and, when one fails,
runs the group again with a nested transaction per operation: the failed one leaves nothing, the
others commit once, and only the effects of those that succeeded are published."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import lmdb
import pytest
from support.writer_hold import writer_held

from agl_core.errors import AglError, InternalError, NotFoundError
from agl_core.store.lmdb.writer import NESTED_AFTER_FAILURE, Writer


class Recorder:
    """The writer's callbacks: effects published per commit, and rollbacks."""

    def __init__(self) -> None:
        self.published: list[list[str]] = []
        self.aborts = 0

    def on_commit(self, effects: list[list[str]]) -> None:
        self.published.append([name for effect in effects for name in effect])

    def on_abort(self) -> None:
        self.aborts += 1


def put(key: bytes, fail: BaseException | None = None) -> Any:
    """An operation that writes ``key``, records it as an effect, then raises ``fail`` if given."""

    def op(txn: lmdb.Transaction, effects: list[str]) -> bytes:
        txn.put(key, b"v")
        effects.append(key.decode())
        if fail is not None:
            raise fail
        return key

    return op


async def run_as_one_group(writer: Writer[list[str]], ops: list[Any]) -> list[Any]:
    """Submit ``ops`` while the writer is held inside an earlier operation, so that they all wait
    and the writer takes them as one group; their outcomes (results or exceptions)."""
    async with writer_held(writer) as blocker:
        futures = [writer.submit(op) for op in ops]
        groups = writer.groups
    await blocker
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert writer.groups == groups + 2, "the operations did not run as one group"
    return outcomes


def stored(env: lmdb.Environment) -> set[bytes]:
    with env.begin() as txn:
        return {bytes(key) for key, _ in txn.cursor()}


@pytest.fixture
def env(tmp_path: Path) -> Any:
    environment = lmdb.open(str(tmp_path / "env"), map_size=1 << 24)
    yield environment
    environment.close()


async def make_writer(env: lmdb.Environment, recorder: Recorder) -> Writer[list[str]]:
    return Writer(env, asyncio.get_running_loop(), list, recorder.on_commit, on_abort=recorder.on_abort)


async def test_a_group_that_succeeds_runs_once_without_nested_transactions(env: lmdb.Environment) -> None:
    recorder = Recorder()
    writer = await make_writer(env, recorder)
    try:
        outcomes = await run_as_one_group(writer, [put(b"a"), put(b"b"), put(b"c")])
        assert outcomes == [b"a", b"b", b"c"]
        assert stored(env) == {b"a", b"b", b"c"}
        assert writer.reruns == 0 and recorder.aborts == 0
        assert recorder.published[-1] == ["a", "b", "c"]
    finally:
        writer.close()


@pytest.mark.parametrize("failure", [NotFoundError("no such rollout"), ValueError("a bug in an operation")])
async def test_a_failed_operation_leaves_nothing_and_the_rest_of_its_group_commits(
    env: lmdb.Environment, failure: Exception
) -> None:
    recorder = Recorder()
    writer = await make_writer(env, recorder)
    try:
        outcomes = await run_as_one_group(writer, [put(b"a"), put(b"b", fail=failure), put(b"c")])
        assert outcomes[0] == b"a" and outcomes[2] == b"c"
        if isinstance(failure, AglError):
            assert outcomes[1] is failure  # the caller's own error, as it was raised
        else:
            assert isinstance(outcomes[1], InternalError) and "a bug in an operation" in str(outcomes[1])
        assert stored(env) == {b"a", b"c"}  # b's write was rolled back with its operation
        assert writer.reruns == 1
        # Rolled back twice: the whole first run, then the failed operation in the second.
        assert recorder.aborts == 2
        # Published once, and only for what committed.
        assert recorder.published[-1] == ["a", "c"]
        assert sum(names.count("a") for names in recorder.published) == 1
    finally:
        writer.close()


async def test_after_a_failure_groups_take_the_nested_way_for_a_while(env: lmdb.Environment) -> None:
    recorder = Recorder()
    writer = await make_writer(env, recorder)
    try:
        await run_as_one_group(writer, [put(b"a"), put(b"b", fail=NotFoundError("x"))])
        # A second failure right after is rolled back alone, without running its group again.
        outcomes = await run_as_one_group(writer, [put(b"c"), put(b"d", fail=NotFoundError("y"))])
        assert outcomes[0] == b"c" and isinstance(outcomes[1], NotFoundError)
        assert writer.reruns == 1
        # Once NESTED_AFTER_FAILURE groups have passed, a failure runs its group again once more.
        for i in range(NESTED_AFTER_FAILURE):
            await writer.submit(put(b"k%d" % i))
        await run_as_one_group(writer, [put(b"e"), put(b"f", fail=NotFoundError("z"))])
        assert writer.reruns == 2
        assert {b"a", b"c", b"e"} <= stored(env) and not {b"b", b"d", b"f"} & stored(env)
    finally:
        writer.close()
