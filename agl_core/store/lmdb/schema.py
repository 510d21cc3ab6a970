"""The on-disk layout of the LMDB store: every named sub-database and key format, in one place.

Integers in keys are big-endian so byte order is numeric order and a prefix scan with
``cursor.set_range`` answers the range queries. Each rollout gets an internal number (its
creation order), so keys of attempts and spans are fixed-width and sort by creation.

=================  ====================================  ===========================================
sub-database        key                                   value
=================  ====================================  ===========================================
meta                name                                  counters and pointers (see ``MetaKey``)
rollouts            rollout_id                            ROLLOUT_HEADER + Rollout (no input/attempt)
rollout_inputs      rollout_id                            google.protobuf.Value of the input
rollout_nums        num                                   rollout_id
status_index        status (1 byte) + num                 b""
rollout_index       status (1 byte) + mode (1 byte) + num b"" (answers QueryRollouts; rollout_index.py)
rollout_counts      status (1 byte) + mode (1 byte)       number of rollouts with that status and mode
queue               queue sequence                        rollout_id (dispatch order: dispatch.py, in
                                                          memory, rebuilt from this at open)
attempts            num + attempt sequence (4 bytes)      Attempt
attempt_ids         attempt_id                            num + attempt sequence
spans               num + attempt seq + span seq + id     where the span is in span_chunks (1 + chunk
                                                          number + its index there; span_chunks.py), or
                                                          the span itself as span_resources.py stores
                                                          it (spans of up to 700 bytes; every span of
                                                          schema 2 and 3)
span_chunks         chunk number (write order, never      spans one write added to one rollout, each as
                    reused)                               span_resources.py stores it: their count, a
                                                          table of their bounds, then the spans
span_resources      blake2b-128 of a resource             SpanResource bytes, stored once
span_id_log         num + attempt seq + chunk no          the attempt's span ids, appended (span_ids.py)
span_seqs           num                                   last span sequence id issued
resources           resources_id                          ResourcesUpdate
resources_order     creation number                       resources_id
workers             worker_id                             Worker
events              event_id                              RolloutEvent (rollout without its input)
rollout_events      num + event_id                        b"" (a rollout's events, for deleting them)
=================  ====================================  ===========================================
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import lmdb

from agl_core.store.lmdb.private import FILE_MODE, create_private_dir

SCHEMA_VERSION = 4
# Versions this release opens, upgrading them in place to SCHEMA_VERSION. Version 4 packs spans
# into span_chunks; spans stored whole by versions 2 and 3 read unchanged. Version 3 added
# span_resources; version 2 spans (each with its own resource) read unchanged.
UPGRADABLE_VERSIONS = (2, 3)

DATABASES = (
    "meta",
    "rollouts",
    "rollout_inputs",
    "rollout_nums",
    "status_index",
    "rollout_index",
    "rollout_counts",
    "queue",
    "attempts",
    "attempt_ids",
    "spans",
    "span_chunks",
    "span_resources",
    "span_id_log",
    "span_seqs",
    "resources",
    "resources_order",
    "workers",
    "events",
    "rollout_events",
)

U64 = struct.Struct(">Q")
U32 = struct.Struct(">I")
ATTEMPT_KEY = struct.Struct(">QI")
STATUS_KEY = struct.Struct(">BQ")
INDEX_KEY = struct.Struct(">BBQ")
SPAN_PREFIX = struct.Struct(">QIQ")
EVENT_OF_ROLLOUT = struct.Struct(">QQ")
# num, queue sequence (0: not in the queue), number of attempts.
ROLLOUT_HEADER = struct.Struct(">QQI")


class MetaKey:
    SCHEMA_VERSION = b"schema_version"
    NEXT_ROLLOUT_NUM = b"next_rollout_num"
    NEXT_QUEUE_SEQ = b"next_queue_seq"
    LAST_EVENT_ID = b"last_event_id"
    NEXT_RESOURCES_NUM = b"next_resources_num"
    # The highest span chunk number a deletion removed: new chunks are numbered past it
    # (span_chunks.ChunkNumbers).
    SPAN_CHUNK_DELETED = b"span_chunk_deleted"
    LATEST_RESOURCES = b"latest_resources_id"
    # The LAST_EVENT_ID the rollout index was last kept in step with (see rollout_index.py).
    ROLLOUT_INDEX_EVENT = b"rollout_index_event_id"
    # Present once a rollout of a namespace other than the default one was created.
    NAMESPACED = b"namespaced"
    # LATEST_RESOURCES + b"/" + namespace: the latest set of a namespace other than the default.


@dataclass
class Databases:
    """Handles of the named sub-databases of one environment."""

    meta: lmdb._Database
    rollouts: lmdb._Database
    rollout_inputs: lmdb._Database
    rollout_nums: lmdb._Database
    status_index: lmdb._Database
    rollout_index: lmdb._Database
    rollout_counts: lmdb._Database
    queue: lmdb._Database
    attempts: lmdb._Database
    attempt_ids: lmdb._Database
    spans: lmdb._Database
    span_chunks: lmdb._Database
    span_resources: lmdb._Database
    span_id_log: lmdb._Database
    span_seqs: lmdb._Database
    resources: lmdb._Database
    resources_order: lmdb._Database
    workers: lmdb._Database
    events: lmdb._Database
    rollout_events: lmdb._Database


def open_environment(path: str, *, map_size: int, sync: bool) -> tuple[lmdb.Environment, Databases]:
    """Open (creating if needed) the environment under ``path`` and all its sub-databases."""
    create_private_dir(path)
    env = lmdb.open(
        path,
        mode=FILE_MODE,
        map_size=map_size,
        max_dbs=len(DATABASES) + 1,
        # Durable commits by default. Without sync a commit still survives a kill -9 of the process
        # (the pages are in the OS page cache), but not a crash of the machine.
        sync=sync,
        metasync=sync,
        # Reads happen on the event loop thread and writes on the writer thread, so transactions
        # must not be tied to threads (py-lmdb passes MDB_NOTLS whenever lock is on).
        lock=True,
        max_readers=1024,
        readahead=False,
    )
    with env.begin(write=True) as txn:
        handles = {name: env.open_db(name.encode(), txn=txn, create=True) for name in DATABASES}
        meta = handles["meta"]
        stored = txn.get(MetaKey.SCHEMA_VERSION, db=meta)
        if stored is None or U32.unpack(stored)[0] in UPGRADABLE_VERSIONS:
            txn.put(MetaKey.SCHEMA_VERSION, U32.pack(SCHEMA_VERSION), db=meta)
        elif U32.unpack(stored)[0] != SCHEMA_VERSION:
            env.close()
            raise RuntimeError(
                f"the data directory {path!r} holds store schema version {U32.unpack(stored)[0]}, but this "
                f"agl reads version {SCHEMA_VERSION}; use a matching agl release or a new data directory"
            )
    return env, Databases(**handles)


def attempt_key(num: int, seq: int) -> bytes:
    return ATTEMPT_KEY.pack(num, seq)


def span_key(num: int, attempt_seq: int, span_seq: int, span_id: bytes) -> bytes:
    return SPAN_PREFIX.pack(num, attempt_seq, span_seq) + span_id


def next_counter(txn: lmdb.Transaction, db: lmdb._Database, key: bytes, count: int = 1) -> int:
    """Reserve ``count`` numbers from a counter in ``db``; returns the first (counters start at 1)."""
    raw = txn.get(key, db=db)
    last = U64.unpack(raw)[0] if raw else 0
    txn.put(key, U64.pack(last + count), db=db)
    return last + 1


def read_counter(txn: lmdb.Transaction, db: lmdb._Database, key: bytes) -> int:
    raw = txn.get(key, db=db)
    return U64.unpack(raw)[0] if raw else 0
