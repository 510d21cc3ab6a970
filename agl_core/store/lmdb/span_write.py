"""The store writer's span operation: a batch's spans placed in the write transaction.

Every span of every batch passes through :func:`ingest`, on the one writer thread, and the commit
waits for it. This is the reference span loop: ``span_loop.pyx`` does the same with its per-span
work in C and is what the store runs where it was built (``span_path``); the two are held to the
same answers and stored bytes by ``tests/unit/test_span_loop_twin.py``, so a change here is made
there too. It is a module of plain functions over the transaction (no store object), which mypyc
also compiles as it is, with the modules it calls per span (``span_ids``, ``span_chunks``,
``wire``): ``bench/compiled_floor.py`` measures agl-server with them compiled (``--floors
agl-mypyc`` of ``bench/store_bench.py``).
"""

from __future__ import annotations

from typing import Any

import grpc

from agl_core.errors import NotFoundError
from agl_core.proto import types_pb2 as t
from agl_core.store.lmdb.records import RolloutRecord, Tx
from agl_core.store.lmdb.schema import SPAN_PREFIX, U64, attempt_key, read_counter
from agl_core.store.lmdb.span_chunks import ChunkNumbers, ChunkWriter
from agl_core.store.lmdb.span_ids import SpanIdIndex
from agl_core.store.lmdb.span_resources import ResourceWriter
from agl_core.store.wire import attempt_id_field, with_sequence_id

# Where a batch's spans go: the rollout's record, the attempt, the rollout's number, the attempt's.
# (The compiled loop's attempt_beat gives None and the attempt's serialized record, its heartbeat
# set, for an attempt whose spans change no status: ``finish`` puts that record back as it is.)
Target = tuple[RolloutRecord, t.Attempt, int, int]
# Sequence ids are int64 on the wire: the next one after this would wrap to -2^63.
MAX_SEQUENCE_ID = (1 << 63) - 1
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]


def ingest(
    tx: Tx, spans: list[tuple[int, Any, bytes]], span_ids: SpanIdIndex, chunk_numbers: ChunkNumbers, page_size: int
) -> tuple[int, list[int], list[tuple[int, int, str]]]:
    """Place ``spans`` (index in the batch, parsed header, bytes as received): the number
    accepted, the indices of duplicates, and (index, gRPC code, message) of those rejected."""
    # The writer's hot path: every span of every batch passes here, on the one writer thread, so
    # what is used per span is bound to locals and each header field is read once.
    dbs = tx.dbs
    txn = tx.txn
    log_db = dbs.span_id_log
    add_if_new = span_ids.add_if_new
    pack_prefix = SPAN_PREFIX.pack
    accepted = 0
    duplicates: list[int] = []
    rejected: list[tuple[int, int, str]] = []
    # (record, attempt, rollout num, attempt seq) by (rollout id, attempt id), or why not found.
    targets: dict[tuple[str, str], Target | str] = {}
    # By (rollout num, attempt seq): each attempt resolved once, however the spans name it.
    known: dict[tuple[int, int], Target] = {}
    counters: dict[int, int] = {}
    touched: dict[tuple[int, int], Target] = {}
    resources: ResourceWriter | None = None
    chunks = ChunkWriter(txn, dbs, chunk_numbers, page_size)
    pack = chunks.add
    for i, header, raw in spans:
        attempt_id = header.attempt_id
        coords = (header.rollout_id, attempt_id)
        target = targets.get(coords)
        if target is None:
            target = ingest_target(tx, header.rollout_id, attempt_id, known)
            targets[coords] = target
        if isinstance(target, str):
            rejected.append((i, NOT_FOUND, f"spans[{i}]: {target}"))
            continue
        num, seq = target[2], target[3]
        span_id = header.span_id
        sequence_id = header.sequence_id
        last = counters.get(num)
        if last is None:
            last = read_counter(txn, dbs.span_seqs, U64.pack(num))
        if sequence_id == 0 and last >= MAX_SEQUENCE_ID:
            # Checked before the span id is recorded, so the span can be sent again with an id.
            rejected.append((i, FAILED_PRECONDITION, f"spans[{i}]: {exhausted(header.rollout_id, last)}"))
            continue
        if not add_if_new(txn, log_db, num, seq, span_id):
            duplicates.append(i)
            continue
        if attempt_id != target[1].attempt_id:
            # Sent as "latest": stored with the id it resolved to, so readers see which attempt.
            raw += attempt_id_field(target[1].attempt_id)
        if sequence_id == 0:
            last += 1
            sequence_id = last
            raw = with_sequence_id(raw, sequence_id)
        elif sequence_id > last:
            last = sequence_id
        counters[num] = last
        # The header parsed the resource field: spans without one skip the resource code entirely.
        if header.resource:
            if resources is None:
                resources = ResourceWriter(txn, dbs.span_resources)
            raw = resources.store(raw)
        pack(num, pack_prefix(num, seq, sequence_id) + span_id, raw)
        touched[num, seq] = target
        accepted += 1
    chunks.flush()
    finish(tx, span_ids, counters, touched, accepted)
    return accepted, duplicates, rejected


def finish(
    tx: Tx, span_ids: SpanIdIndex, counters: dict[int, int], touched: dict[tuple[int, int], Target], accepted: int
) -> None:
    """After a batch's spans and chunks are written (here or in ``span_loop``): the span-id logs,
    each rollout's last sequence id, the attempts' heartbeats."""
    txn, dbs = tx.txn, tx.dbs
    span_ids.flush(txn, dbs.span_id_log)
    for num, last in counters.items():
        txn.put(U64.pack(num), U64.pack(last), db=dbs.span_seqs)
    for record, attempt, num, seq in touched.values():
        if record is None:  # from the compiled loop's attempt_beat: the record, its heartbeat set
            txn.put(attempt_key(num, seq), attempt, db=dbs.attempts)
        else:
            tx.heartbeat(record, attempt)
    tx.effects.spans += accepted  # type: ignore[union-attr]


def ingest_target(tx: Tx, rollout_id: str, attempt_id: str, known: dict[tuple[int, int], Target]) -> Target | str:
    """Where the spans of ``(rollout_id, attempt_id)`` go, or why they cannot be placed.

    ``known``: the targets the batch resolved so far, by (rollout num, attempt seq), to which this
    one is added. An attempt the batch names twice (by its id and as "latest") resolves to the same
    objects, and attempts of one rollout share its record: a heartbeat that moves the attempt and
    the rollout to RUNNING then does so once. (With a copy each, the second moved the rollout out of
    a status the first had already taken it out of, and the rollout index's count went below zero.)"""
    record = tx.find_rollout(rollout_id)
    if record is None:
        return f"rollout {rollout_id!r} not found"
    try:
        attempt = tx.find_attempt(record, attempt_id)
    except NotFoundError as exc:
        return str(exc)
    key = (record.num, attempt.sequence_id)
    target = known.get(key)
    if target is None:
        sibling = next((other for other in known.values() if other[2] == record.num), None)
        if sibling is not None:
            record = sibling[0]
        target = known[key] = (record, attempt, record.num, attempt.sequence_id)
    return target


def exhausted(rollout_id: str, last: int) -> str:
    """Why a rollout takes no more sequence ids from the store."""
    return (
        f"rollout {rollout_id!r} has used sequence ids up to {last}, and they end at {MAX_SEQUENCE_ID} (2^63-1, "
        "the largest int64); send spans with sequence ids you choose below that, or start a new rollout"
    )
