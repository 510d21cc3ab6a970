"""Which rollouts a DeleteRollouts request selects, whatever the backend: checking the request,
and the predicate a backend applies to each rollout.

A request selects the rollouts that match *every* criterion it sets (ids, an age cut-off, statuses);
one that sets none is refused rather than read as "everything". Without ``force`` only terminal
rollouts are deleted: a queued or running rollout still has a worker or a queue entry that
expects it, so it is cancelled first (UpdateRollout) or deleted with ``force`` on purpose.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from agl_core.errors import InvalidArgumentError
from agl_core.proto import store_pb2 as s
from agl_core.proto import types_pb2 as t
from agl_core.store import rules
from agl_core.store.rules import rollout_status_name

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
TERMINAL_NAMES = ", ".join(sorted(rollout_status_name(st) for st in rules.TERMINAL_ROLLOUT))


def parse_age(text: str, what: str = "age") -> float:
    """Seconds of an age such as ``90s``, ``30m``, ``12h``, ``7d``, ``2w`` (a bare number is seconds)."""
    match = _AGE.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise InvalidArgumentError(
            f"{what} {text!r} is not a positive duration; write a number with a unit s, m, h, d or w, e.g. 30m or 7d"
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_statuses(names: str | list[str], what: str = "status") -> list[int]:
    """Rollout statuses from names (``succeeded,failed`` or a list; case and prefix do not matter)."""
    items = names.split(",") if isinstance(names, str) else names
    out: list[int] = []
    for item in items:
        name = item.strip().upper().removeprefix("ROLLOUT_STATUS_")
        if not name:
            continue
        try:
            out.append(t.RolloutStatus.Value("ROLLOUT_STATUS_" + name))
        except ValueError:
            valid = ", ".join(sorted(rollout_status_name(st) for st in rules.ROLLOUT_STATUSES))
            raise InvalidArgumentError(f"{what} {item.strip()!r} is not a rollout status; use one of {valid}") from None
    return out


@dataclass(frozen=True)
class Selection:
    """A checked DeleteRollouts request."""

    rollout_ids: tuple[str, ...]
    # Rollouts that ended (or, not ended, started) before this many ns since the epoch; None: any age.
    cutoff_ns: int | None
    # None: any status.
    statuses: frozenset[int] | None
    force: bool
    dry_run: bool

    def matches(self, pb: t.Rollout) -> bool:
        """Whether ``pb`` falls in the selection by status and age (ids are the caller's part)."""
        if self.statuses is not None and pb.status not in self.statuses:
            return False
        if self.cutoff_ns is not None:
            when = pb.end_time if pb.HasField("end_time") else pb.start_time
            if when.ToNanoseconds() >= self.cutoff_ns:
                return False
        return True

    @staticmethod
    def active(pb: t.Rollout) -> bool:
        return pb.status not in rules.TERMINAL_ROLLOUT

    def scan_statuses(self) -> list[int]:
        """The statuses whose rollouts a selection without ids looks at, in index order."""
        if self.statuses is not None:
            return sorted(self.statuses)
        return sorted(rules.ROLLOUT_STATUSES)


def selection(request: s.DeleteRolloutsRequest, now_ns: int | None = None) -> Selection:
    """Check ``request`` and make it a :class:`Selection`; raises InvalidArgumentError naming the fix."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    for i, rollout_id in enumerate(request.rollout_ids):
        if not rollout_id:
            raise InvalidArgumentError(f"rollout_ids[{i}] is empty; leave it out or name a rollout")
    ids = tuple(dict.fromkeys(request.rollout_ids))
    cutoffs: list[int] = []
    if request.HasField("ended_before"):
        cutoffs.append(request.ended_before.ToNanoseconds())
    if request.HasField("older_than"):
        age = request.older_than.ToNanoseconds()
        if age <= 0:
            raise InvalidArgumentError(
                f"older_than is {age / 1e9:g}s; it must be positive (rollouts that ended more than this long ago)"
            )
        cutoffs.append(now_ns - age)
    statuses: frozenset[int] | None = None
    if request.status_in:
        unknown = [st for st in request.status_in if st not in rules.ROLLOUT_STATUSES]
        if unknown:
            valid = ", ".join(sorted(rollout_status_name(st) for st in rules.ROLLOUT_STATUSES))
            raise InvalidArgumentError(f"status_in holds {unknown[0]}, which is not a rollout status; use {valid}")
        statuses = frozenset(request.status_in)
        active = sorted(rollout_status_name(st) for st in statuses - rules.TERMINAL_ROLLOUT)
        if active and not request.force:
            raise InvalidArgumentError(
                f"status_in holds {', '.join(active)}, which are not terminal; deleting queued or running rollouts "
                f"needs force (their workers then get NOT_FOUND), or keep to {TERMINAL_NAMES}"
            )
    if not ids and not cutoffs and statuses is None:
        raise InvalidArgumentError(
            "the selection is empty: set rollout_ids, ended_before, older_than or status_in (to delete every "
            f"finished rollout, set status_in to {TERMINAL_NAMES})"
        )
    return Selection(
        rollout_ids=ids,
        cutoff_ns=min(cutoffs) if cutoffs else None,
        statuses=statuses,
        force=request.force,
        dry_run=request.dry_run,
    )


@dataclass
class DeleteSummary:
    """What a deletion did (or, with ``dry_run``, would do)."""

    deleted_rollouts: int
    deleted_attempts: int
    deleted_spans: int
    not_found_rollout_ids: list[str]
    skipped_active: int

    @classmethod
    def from_pb(cls, pb: s.DeleteRolloutsResponse) -> DeleteSummary:
        return cls(
            deleted_rollouts=pb.deleted_rollouts,
            deleted_attempts=pb.deleted_attempts,
            deleted_spans=pb.deleted_spans,
            not_found_rollout_ids=list(pb.not_found_rollout_ids),
            skipped_active=pb.skipped_active,
        )
