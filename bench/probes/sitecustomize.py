"""Probes for bench/ack_sensitivity.py, loaded into the agl-server processes it starts (Python imports
``sitecustomize`` at start-up from the first folder on its path that has one; the bench puts this
folder first in the server's PYTHONPATH). Without the variables below nothing is changed.

- ``AGL_PROBE_WRITER_US``: after each span batch's write, the store writer spins that many
  microseconds of its own CPU (the span loop ``span_path.choose`` gives the store, compiled or
  Python, once per batch).
- ``AGL_PROBE_LOOP_US``: before each batch's edge check, the event loop spins that many
  microseconds (``span_streams.all_readable``, once per batch).
- ``AGL_PROBE_SKIP_DEDUP=1``: a what-if, never a setting. The writer records no span ids, so a
  resent span is stored twice. It also writes no sequence ids into the spans. What is left is what
  the writer costs without those two steps. It changes the Python span loop (the bench runs that
  one for it, ``AGL_SPAN_LOOP=python``).
- ``AGL_PROBE_RESERVE_MB``: a what-if, never a setting. Right after the store opens its
  environment, one write transaction stores a value of that many MiB and the next deletes it, so
  LMDB's free list starts with one contiguous run of free pages over blocks already written. LMDB
  takes free pages lowest first and reads the free list's later records only once that run is
  used up, so until then every commit's pages are consecutive: one write to the disk where a
  commit otherwise makes 14-37. It bounds what the locality of a commit's pages is worth; it does
  not last (the run is used up, and the pages freed meanwhile are scattered again). The data
  file's size once the run is freed (where the run ends) is written to ``AGL_PROBE_RESERVE_SIZE``,
  so that the bench can read, once the server is gone, how much of the run was never reached
  (``lmdb_pages.unreached_reserve``).
- ``AGL_PROBE_HOPS``: a file where, when the server exits, the times (``perf_counter_ns``) of each
  span batch's hops are written as JSON (bench/ack_hops.py): read on the event loop (before its
  edge check), queued for the writer, its group begun and committed on the writer, delivered on
  the event loop, its ack built. Writes before the first batch (the bench's set-up) are dropped.
  The wrappers cost each hop well under a microsecond. With one writer only: the lists pair up
  by position.
- ``AGL_PROBE_BATCH_HOPS``: the same hops kept batch by batch, for any number of span streams
  (bench/ack_hops.py --writers), and each group's start, end, size and commit time. A write is
  known by its operation from the queue to its delivery and by its future from there to its ack,
  which is timed where the stream reads the write's answer (``PendingSpans.answer``), just before
  the ack is built.
- ``AGL_PROBE_YIELD_TO_WRITER=1``: a what-if, never a setting. When a write is queued for an idle
  writer (nothing else queued), the event loop gives up its CPU at once (``os.sched_yield``, which
  releases the GIL), so that the writer starts the write before the loop finishes its turn.
- ``AGL_PROBE_SPINS``, ``AGL_PROBE_SPINS_EVERY``: a file where the number of spins so far is
  written, every that many spins, so that the bench can tell that the spin ran for its batches.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

_spins = 0
# Read once here, not per spin: the spin runs once per batch on the thread it measures.
_SPINS_PATH = os.environ.get("AGL_PROBE_SPINS")
_SPINS_EVERY = int(os.environ.get("AGL_PROBE_SPINS_EVERY") or 64)


def _spin(microseconds: float) -> None:
    global _spins
    end = time.thread_time() + microseconds / 1e6
    while time.thread_time() < end:
        pass
    _spins += 1
    if _SPINS_PATH and _spins % _SPINS_EVERY == 0:
        with open(_SPINS_PATH, "w") as out:
            out.write(str(_spins))


def _reserve(megabytes: int) -> None:
    from agl_core.store.lmdb import core

    sys.path.append(str(Path(__file__).resolve().parent.parent))  # bench/, for lmdb_pages
    from lmdb_pages import make_reserve

    opener = core.open_environment

    def opening(path: str, *, map_size: int, sync: bool) -> Any:
        env, dbs = opener(path, map_size=max(map_size, 4 * (megabytes << 20)), sync=sync)
        end = make_reserve(env, megabytes)
        target = os.environ.get("AGL_PROBE_RESERVE_SIZE")
        if target:
            with open(target, "w") as out:
                out.write(str(end))
        return env, dbs

    core.open_environment = opening


HOPS = ("read", "queued", "begun", "committed", "delivered", "acked")


def _record_hops(path: str) -> None:
    """``AGL_PROBE_HOPS``: each hop's times in lists of their own, written at exit. With one closed-loop
    writer every list holds one entry per batch, in order (bench/ack_hops.py checks that)."""
    from agl_core.store import span_outcomes
    from agl_core.store.lmdb import writer
    from agl_server import span_streams

    now = time.perf_counter_ns
    times: dict[str, list[int]] = {hop: [] for hop in HOPS}
    group_sizes: list[int] = []
    started = False

    readable = span_streams.all_readable

    def reading(*args: Any, **kwargs: Any) -> Any:
        nonlocal started
        if not started:  # what the writer did before the first batch was the set-up's
            started = True
            for hop in HOPS:
                times[hop].clear()
            group_sizes.clear()
        times["read"].append(now())
        return readable(*args, **kwargs)

    submit, execute, deliver = writer.Writer.submit, writer.Writer._execute, writer.Writer._deliver

    def submitting(self: Any, op: Any, source: Any = None) -> Any:
        # Stamped before the hand-over: a lone stream's write runs (and is delivered) within submit.
        times["queued"].append(now())
        return submit(self, op, source)

    def executing(self: Any, group: Any) -> Any:
        times["begun"].append(now())
        result = execute(self, group)
        times["committed"].append(now())
        group_sizes.append(len(group))
        return result

    def delivering(self: Any, *args: Any) -> Any:
        times["delivered"].append(now())
        return deliver(self, *args)

    stored = span_outcomes.SpanOutcomes.stored

    def acking(self: Any, *args: Any) -> Any:
        times["acked"].append(now())
        return stored(self, *args)

    span_outcomes.SpanOutcomes.stored = acking  # type: ignore[method-assign]
    _install_hops(path, {"times": times, "group_sizes": group_sizes}, reading, submitting, executing, delivering)


def _record_batch_hops(path: str) -> None:
    """``AGL_PROBE_BATCH_HOPS``: each span batch's hop times and its group, written at exit."""
    from agl_core.store.lmdb import spans, writer
    from agl_server import span_streams

    now = time.perf_counter_ns
    read_at: list[int] = []  # the batch the loop is checking: it queues its write right after
    by_op: dict[Any, dict[str, int]] = {}
    by_future: dict[Any, dict[str, int]] = {}
    batches: list[dict[str, int]] = []
    groups: list[tuple[int, int, int, int]] = []  # begun, committed, writes, the commit's ns

    readable = span_streams.all_readable

    def reading(*args: Any, **kwargs: Any) -> Any:
        read_at[:] = [now()]
        return readable(*args, **kwargs)

    submit, execute, deliver = writer.Writer.submit, writer.Writer._execute, writer.Writer._deliver

    def submitting(self: Any, op: Any, source: Any = None) -> Any:
        if read_at:  # a span batch's write (the bench's set-up writes were read by no stream)
            by_op[op] = {"read": read_at.pop(), "queued": now()}
        return submit(self, op, source)

    def executing(self: Any, group: Any) -> Any:
        begun = now()
        result = execute(self, group)  # a group retried (the map grown) is timed by its last run
        committed = now()
        commit = int(result[2] * 1e9)  # the seconds LMDB's commit took, its syncs included
        groups.append((begun, committed, len(group), commit))
        for op, _ in group:
            record = by_op.get(op)
            if record is not None:
                record.update(begun=begun, committed=committed, group=len(groups) - 1)
        return result

    def delivering(self: Any, group: Any, *args: Any) -> Any:
        at = now()
        for op, future in group:
            record = by_op.pop(op, None)
            if record is not None and "begun" in record:
                record["delivered"] = at
                by_future[future] = record
        return deliver(self, group, *args)

    answer = spans.PendingSpans.answer

    def answering(self: Any) -> Any:
        record = by_future.pop(self.write, None) if self.write is not None else None
        if record is not None:
            record["acked"] = now()
            batches.append(record)
        return answer(self)

    spans.PendingSpans.answer = answering  # type: ignore[method-assign]
    _install_hops(path, {"batches": batches, "groups": groups}, reading, submitting, executing, delivering)


def _install_hops(
    path: str, payload: dict[str, Any], reading: Any, submitting: Any, executing: Any, delivering: Any
) -> None:
    """The wrappers both hop recorders put on the loop's edge check and the writer, and ``payload``
    (lists the wrappers fill in place) written to ``path`` as JSON when the server exits."""
    import atexit
    import json

    from agl_core.store.lmdb import writer
    from agl_server import span_streams

    def save() -> None:
        with open(path, "w") as out:
            json.dump(payload, out)

    span_streams.all_readable = reading
    writer.Writer.submit = submitting  # type: ignore[method-assign]
    writer.Writer._execute = executing  # type: ignore[method-assign]
    writer.Writer._deliver = delivering  # type: ignore[method-assign]
    atexit.register(save)


def _yield_to_writer() -> None:
    from agl_core.store.lmdb import writer

    submit = writer.Writer.submit

    def submitting(self: Any, op: Any, source: Any = None) -> Any:
        future = submit(self, op, source)
        if len(self._pending) == 1:  # the writer was waiting for work (or is finishing a group)
            os.sched_yield()
        return future

    writer.Writer.submit = submitting  # type: ignore[method-assign]


def _install() -> None:
    hops = os.environ.get("AGL_PROBE_HOPS")
    if hops:
        _record_hops(hops)
    batch_hops = os.environ.get("AGL_PROBE_BATCH_HOPS")
    if batch_hops:
        _record_batch_hops(batch_hops)
    if os.environ.get("AGL_PROBE_YIELD_TO_WRITER") == "1":
        _yield_to_writer()  # after the hops' wrapper, so that "queued" is timed before the yield
    reserve_mb = int(os.environ.get("AGL_PROBE_RESERVE_MB") or 0)
    if reserve_mb:
        _reserve(reserve_mb)
    writer_us = float(os.environ.get("AGL_PROBE_WRITER_US") or 0)
    loop_us = float(os.environ.get("AGL_PROBE_LOOP_US") or 0)
    skip_dedup = os.environ.get("AGL_PROBE_SKIP_DEDUP") == "1"
    if not (writer_us or loop_us or skip_dedup):
        return
    from agl_core.store.lmdb import span_path, span_write
    from agl_core.store.lmdb.span_ids import SpanIdIndex

    if writer_us:
        choose = span_path.choose

        def choose_spinning(name: str | None = None) -> Any:
            loop, ingest = choose(name)

            def spinning_ingest(*args: Any, **kwargs: Any) -> Any:
                result = ingest(*args, **kwargs)
                _spin(writer_us)
                return result

            return loop, spinning_ingest

        span_path.choose = choose_spinning
    if skip_dedup:
        SpanIdIndex.add_if_new = lambda self, txn, log_db, num, seq, span_id: True  # type: ignore[method-assign]
        span_write.with_sequence_id = lambda raw, sequence_id: raw
    if loop_us:
        from agl_server import span_streams

        readable = span_streams.all_readable

        def spinning_check(*args: Any, **kwargs: Any) -> Any:
            _spin(loop_us)
            return readable(*args, **kwargs)

        span_streams.all_readable = spinning_check


_install()
