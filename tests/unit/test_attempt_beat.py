"""The compiled span loop's heartbeat on an attempt's stored bytes (``attempt_beat.pyx``) against
the Python path's (``Tx.heartbeat``: parse, set ``last_heartbeat_time``, serialize).

On generated attempts and odd encodings of them, the record written must parse to what the Python
path writes (and be the same bytes where the runtime serialized the record and holds no map, whose
order it does not keep); what the walk does not follow is left to the Python path. Then stores
running each span loop take the same batches over attempts in every state a span can meet (RUNNING,
PREPARING and UNRESPONSIVE latest attempts, stale ones, finished ones, named by id or "latest",
unknown): every attempt and rollout must end alike, heartbeat and status, and the compiled store
must have taken the bytes' way for the attempts whose spans change no status."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agl_core import LmdbStore
from agl_core.proto import trace_pb2 as tr
from agl_core.proto import types_pb2 as t
from agl_core.store.lmdb import span_path
from agl_core.store.wire import varint

if not span_path.compiled_available():
    if shutil.which("cc") is not None:
        raise AssertionError("pip install -e . should have built the compiled span loop (a C compiler is here)")
    pytest.skip("no C compiler here, so there is no compiled heartbeat to test", allow_module_level=True)

from agl_core.store.lmdb import attempt_beat, span_loop  # type: ignore[attr-defined]

NOW = st.integers(0, 2**62)


def beaten_by_runtime(raw: bytes, now_ns: int) -> t.Attempt:
    attempt = t.Attempt.FromString(raw)
    attempt.last_heartbeat_time.FromNanoseconds(now_ns)
    return attempt


@st.composite
def attempts(draw: st.DrawFn) -> t.Attempt:
    attempt = t.Attempt(
        rollout_id=draw(st.text(max_size=12)),
        attempt_id=draw(st.text(max_size=12)),
        sequence_id=draw(st.integers(0, 2**31 - 1)),
        status=draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 9])),  # 9: a status a newer release might add
        worker_id=draw(st.text(max_size=8)),
    )
    for name in ("start_time", "end_time", "last_heartbeat_time"):
        if draw(st.booleans()):
            getattr(attempt, name).FromNanoseconds(draw(NOW))
    if draw(st.booleans()):
        attempt.metadata.update({key: draw(st.text(max_size=5)) for key in draw(st.lists(st.text(max_size=4)))})
    return attempt


@settings(max_examples=400, deadline=None)
@given(attempt=attempts(), now_ns=NOW)
def test_the_heartbeat_on_the_bytes_is_the_runtimes(attempt: t.Attempt, now_ns: int) -> None:
    raw = attempt.SerializeToString()
    beaten = attempt_beat.with_heartbeat(raw, now_ns)
    assert beaten is not None
    record, status = beaten
    expected = beaten_by_runtime(raw, now_ns)
    assert t.Attempt.FromString(record) == expected
    assert status == attempt.status
    if len(attempt.metadata.fields) <= 1:  # no map order to differ in
        assert record == expected.SerializeToString()


def _heartbeat_field(seconds: int, nanos: int) -> bytes:
    """An Attempt's ``last_heartbeat_time`` field alone, serialized: appended to a record, it is one
    more occurrence of the field, which the runtime merges into the ones before."""
    return t.Attempt(last_heartbeat_time={"seconds": seconds, "nanos": nanos}).SerializeToString()


@pytest.mark.parametrize(
    "raw",
    [
        # last_heartbeat_time sent twice (the runtime merges them), and after a higher field
        t.Attempt(attempt_id="a", status=2).SerializeToString() + _heartbeat_field(5, 0) + _heartbeat_field(0, 7),
        t.Attempt(metadata={"k": "v"}).SerializeToString() + _heartbeat_field(1, 2),
        # a field this release does not know, kept as an unknown field
        t.Attempt(attempt_id="a", status=1).SerializeToString() + varint(77 << 3) + varint(3),
        # the status twice: the last counts
        t.Attempt(status=1).SerializeToString() + varint(6 << 3) + varint(2),
        b"",
    ],
    ids=["heartbeat twice", "heartbeat last", "unknown field", "status twice", "empty"],
)
def test_odd_encodings_give_what_the_runtime_reads(raw: bytes) -> None:
    beaten = attempt_beat.with_heartbeat(raw, 1_700_000_000_123_456_789)
    assert beaten is not None
    record, status = beaten
    assert t.Attempt.FromString(record) == beaten_by_runtime(raw, 1_700_000_000_123_456_789)
    assert status == t.Attempt.FromString(raw).status


@pytest.mark.parametrize(
    ("what", "raw"),
    [
        ("the heartbeat as a varint", varint(8 << 3) + varint(1)),
        ("cut short", t.Attempt(attempt_id="attempt").SerializeToString()[:-2]),
        ("a group", varint(90 << 3 | 3) + varint(90 << 3 | 4)),
        ("field number 0", varint(0) + varint(1)),
    ],
)
def test_what_the_walk_does_not_follow_is_left_to_the_python_path(what: str, raw: bytes) -> None:
    assert attempt_beat.with_heartbeat(raw, 10**18) is None, what


# --- through the store: both span loops over attempts in every state -----------------------------


async def _attempts_in_every_state(store: LmdbStore) -> list[tuple[str, str]]:
    """(rollout id, attempt id or "latest") for attempts in each state a span can meet."""
    for _ in range(3):
        await store.enqueue_rollout({"n": 0})
    running = await store.dequeue_rollout(worker_id="w0", running=True)  # RUNNING, latest
    preparing = await store.dequeue_rollout(worker_id="w1")  # PREPARING, latest: its first span starts it
    unresponsive = await store.dequeue_rollout(worker_id="w2", running=True)
    assert running is not None and preparing is not None and unresponsive is not None
    await store.update_attempt(unresponsive.rollout_id, "latest", status="unresponsive")
    started = await store.start_rollout({"n": 1})  # PREPARING too, not from the queue
    retried = await store.start_rollout({"n": 2})
    await store.start_attempt(retried.rollout_id)  # a manual retry: the first attempt is now stale
    done = await store.start_rollout({"n": 3})
    await store.update_attempt(done.rollout_id, "latest", status="succeeded")
    named = [
        (rollout.rollout_id, rollout.attempt.attempt_id)  # type: ignore[union-attr]
        for rollout in (running, preparing, unresponsive, started, retried, done)
    ]
    return [
        *named,
        (retried.rollout_id, "latest"),
        ("no-such-rollout", "a"),
        (running.rollout_id, "no-such-attempt"),
    ]


def _span(rollout_id: str, attempt_id: str, n: int) -> bytes:
    return tr.Span(
        trace_id=b"\x07" * 16, span_id=n.to_bytes(8, "big"), name="step", rollout_id=rollout_id, attempt_id=attempt_id
    ).SerializeToString()


def _state(store: LmdbStore, ids: list[str]) -> dict[str, Any]:
    """Every attempt (heartbeat left out, its presence kept) and every rollout's status, by id."""

    async def read() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for rollout_id in ids:
            rollout = await store.get_rollout(rollout_id)
            assert rollout is not None
            page = await store.query_attempts(rollout_id)
            out[rollout_id] = (
                rollout.status,
                [(a.attempt_id, a.status, a.last_heartbeat_time is not None, a.worker_id) for a in page.items],
            )
        return out

    return asyncio.run(read())


def test_both_span_loops_leave_every_attempt_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = tmp_path / "template"

    async def make() -> list[tuple[str, str]]:
        store = LmdbStore(template, sync=False)
        try:
            return await _attempts_in_every_state(store)
        finally:
            await store.close()

    named = asyncio.run(make())
    ids = sorted({rollout_id for rollout_id, _ in named if rollout_id != "no-such-rollout"})
    batches = [[_span(r, a, 10 * b + k) for k, (r, a) in enumerate(named)] for b in range(3)]
    taken: list[bool] = []
    beat_target = span_loop.beat_target

    def counted(*args: Any) -> Any:
        target = beat_target(*args)
        taken.append(target is not None)
        return target

    monkeypatch.setattr(span_loop, "beat_target", counted)

    def run(loop: str) -> tuple[list[str], dict[str, Any], float]:
        path = tmp_path / loop
        shutil.copytree(template, path)
        started = time.time()
        store = LmdbStore(path, sync=False, span_loop=loop)

        async def feed() -> list[str]:
            try:
                return [str(await store.backend.ingest_span_bytes(raws)) for raws in batches]
            finally:
                await store.close()

        answers = asyncio.run(feed())
        reopened = LmdbStore(path, sync=False)
        try:
            return answers, _state(reopened, ids), started
        finally:
            asyncio.run(reopened.close())

    python_answers, python_state, _ = run("python")
    assert not taken
    compiled_answers, compiled_state, started = run("compiled")
    assert compiled_answers == python_answers
    assert compiled_state == python_state
    # The bytes' way was taken for the attempts whose spans change no status: in the first batch the
    # RUNNING, the stale and the finished one; from the second on also the three the first batch
    # moved to RUNNING (two PREPARING, one UNRESPONSIVE). Never for "latest" or the unknown ones.
    assert len(taken) == 3 * len(named)
    assert taken.count(True) == 3 + 6 + 6, taken
    # Every attempt took spans: its heartbeat is the writes' time, whichever way it went.
    for rollout_id in ids:
        for attempt in asyncio.run(_attempts_of(tmp_path / "compiled", rollout_id)):
            assert attempt.last_heartbeat_time is not None and attempt.last_heartbeat_time >= started - 1, attempt


async def _attempts_of(path: Path, rollout_id: str) -> list[Any]:
    store = LmdbStore(path, sync=False)
    try:
        return list((await store.query_attempts(rollout_id)).items)
    finally:
        await store.close()
