"""Attempts the fuzz created, for its requests to name (``support/fuzz_messages.py``).

Attempt ids are made by the server, so no pool of ids could hold them, and without them the paths
that take an attempt (spans, reports, heartbeats, attempt updates) would be reached only up to
their NOT_FOUND. The test hands each answer to :func:`remember_attempts`; a generated message with
``rollout_id`` and ``attempt_id`` then often names one of those attempts, by its id or as
"latest", the newest few most often, so that the messages of one request name one attempt both
ways. Seeded rollouts (:data:`SEED_PREFIX`) never enter the pool.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor
from hypothesis import strategies as st

SEED_PREFIX = "seed-"
F = descriptor.FieldDescriptor

# (rollout id, attempt id) of attempts the server created for the fuzz, from its answers; the most
# recent LIVE_LIMIT, so that attempts of rollouts the fuzz since deleted drop out.
LIVE_ATTEMPTS: list[tuple[str, str]] = []
LIVE_LIMIT = 48


def remember_attempts(message: Any) -> None:
    """Add every (rollout id, attempt id) that ``message`` (an answer) holds to LIVE_ATTEMPTS, except
    those of seeded rollouts."""
    fields = message.DESCRIPTOR.fields_by_name
    if "rollout_id" in fields and "attempt_id" in fields and fields["attempt_id"].type == F.TYPE_STRING:
        pair = (message.rollout_id, message.attempt_id)
        if all(pair) and not pair[0].startswith(SEED_PREFIX) and pair not in LIVE_ATTEMPTS:
            LIVE_ATTEMPTS.append(pair)
            del LIVE_ATTEMPTS[:-LIVE_LIMIT]
    for field, value in message.ListFields():
        if field.type != F.TYPE_MESSAGE or field.message_type.GetOptions().map_entry:
            continue
        for item in value if field.is_repeated else (value,):
            remember_attempts(item)


_CHOICE = st.integers(0, 9)
# Often one of the newest few, so that the messages of one request (a batch's spans, a heartbeat's
# attempts) name the same attempt in both ways.
_LIVE_INDEX = st.one_of(st.integers(0, 2), st.integers(0, 1 << 16))
_LIVE_NAME = st.sampled_from(("id", "id", "latest"))
_SPAN_IDS = st.tuples(st.binary(min_size=15, max_size=15), st.binary(min_size=0, max_size=7))


def name_live_attempt(draw: st.DrawFn, message: Any) -> None:
    """Point ``message`` (with rollout_id and attempt_id fields) at an attempt the fuzz created."""
    # Every draw is made whatever the pool holds: hypothesis refuses a test whose draws depend on
    # outside state.
    choice, index, name = draw(_CHOICE), draw(_LIVE_INDEX), draw(_LIVE_NAME)
    is_span = message.DESCRIPTOR.full_name == "agl.v1.Span"
    ids = draw(_SPAN_IDS) if is_span else None
    if not LIVE_ATTEMPTS or choice >= 4:
        return
    rollout_id, attempt_id = LIVE_ATTEMPTS[-1 - index % len(LIVE_ATTEMPTS)]
    message.rollout_id = rollout_id
    message.attempt_id = attempt_id if name == "id" else "latest"
    if ids is not None and choice < 3:
        # Valid trace and span ids too, so that the span is stored, not refused at the edge.
        message.trace_id, message.span_id = b"\x01" + ids[0], b"\x01" + ids[1]
