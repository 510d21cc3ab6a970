"""The retention policy of agl-server: delete finished rollouts older than an age, periodically.

``--retention 7d`` deletes, every ``--retention-interval`` (and once at start), the rollouts with a
status in ``--retention-statuses`` (default: every terminal one) that ended more than 7 days ago,
with their attempts, spans and events. It calls the same DeleteRollouts as a client would, so a
pass is many short write transactions and never stalls ingestion. Only terminal statuses are
allowed: a policy that deleted queued or running work would pull it from under its workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from agl_core.errors import InvalidArgumentError
from agl_core.proto import store_pb2 as s
from agl_core.store import deletion, rules
from agl_core.store.backend import StoreBackend
from agl_core.store.rules import rollout_status_name

logger = logging.getLogger("agl_server")

DEFAULT_INTERVAL = 600.0


@dataclass(frozen=True)
class RetentionPolicy:
    """Delete rollouts with a status in ``statuses`` that ended more than ``max_age`` seconds ago."""

    max_age: float
    statuses: tuple[int, ...] = tuple(sorted(rules.TERMINAL_ROLLOUT))
    interval: float = DEFAULT_INTERVAL

    @classmethod
    def from_flags(cls, age: str, statuses: str | None, interval: str | None) -> RetentionPolicy:
        """From the command-line values; raises InvalidArgumentError with the fix."""
        max_age = deletion.parse_age(age, "--retention")
        chosen = tuple(deletion.parse_statuses(statuses, "--retention-statuses")) if statuses else None
        active = [rollout_status_name(st) for st in chosen or () if st not in rules.TERMINAL_ROLLOUT]
        if active:
            raise InvalidArgumentError(
                f"--retention-statuses holds {', '.join(active)}; a retention policy deletes only finished "
                f"rollouts ({deletion.TERMINAL_NAMES})"
            )
        every = deletion.parse_age(interval, "--retention-interval") if interval else min(DEFAULT_INTERVAL, max_age)
        return cls(max_age, chosen or cls.statuses, every)

    def request(self) -> s.DeleteRolloutsRequest:
        request = s.DeleteRolloutsRequest(status_in=list(self.statuses))
        request.older_than.FromNanoseconds(int(self.max_age * 1e9))
        return request

    def describe(self) -> str:
        names = ", ".join(rollout_status_name(st) for st in self.statuses)
        return f"rollouts ({names}) that ended more than {self.max_age:g}s ago, checked every {self.interval:g}s"


class RetentionTask:
    """Runs the policy on the server's loop until :meth:`stop`."""

    def __init__(self, backend: StoreBackend, policy: RetentionPolicy) -> None:
        self.backend = backend
        self.policy = policy
        self.passes = 0
        self.deleted = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        logger.info("retention: deleting %s", self.policy.describe())
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> s.DeleteRolloutsResponse:
        response = await self.backend.delete_rollouts(self.policy.request())
        self.passes += 1
        self.deleted += response.deleted_rollouts
        if response.deleted_rollouts:
            logger.info(
                "retention: deleted %d rollouts, %d attempts, %d spans",
                response.deleted_rollouts,
                response.deleted_attempts,
                response.deleted_spans,
                extra={"deleted_rollouts": response.deleted_rollouts, "deleted_spans": response.deleted_spans},
            )
        return response

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next pass tries again; the server keeps serving
                logger.error("retention: a pass failed and is retried in %gs: %s", self.policy.interval, exc)
            await asyncio.sleep(self.policy.interval)
