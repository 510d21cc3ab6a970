"""Where a runner's work comes from: the interface both work sources implement.

:class:`~agl_core.runner.work_stream.WorkStreamSource` takes work pushed by agl-server on a
RunnerService Work stream; :class:`~agl_core.runner.dequeue.DequeueSource` claims it from any
store (the embedded LMDB store, or agl-server's DequeueRollout long poll).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agl_core.proto import resources_pb2
from agl_core.proto import types_pb2 as t
from agl_core.types import convert
from agl_core.types.core import AttemptStatus, Rollout
from agl_core.types.resources import NamedResources


@dataclass
class Assignment:
    """One attempt for the runner to run.

    :ivar rollout: the rollout with its new attempt (``rollout.attempt``).
    :ivar resources: the resolved resources (empty when there are none).
    :ivar resources_id: the id of the resources set, if any.
    :ivar resources_error: why there are no resources although the rollout names a set.
    :ivar received_at: ``time.time()`` when the runner got it.
    """

    rollout: Rollout
    resources: NamedResources = field(default_factory=dict)
    resources_id: str | None = None
    resources_error: str = ""
    received_at: float = field(default_factory=time.time)

    @property
    def rollout_id(self) -> str:
        return self.rollout.rollout_id

    @property
    def attempt_id(self) -> str:
        assert self.rollout.attempt is not None
        return self.rollout.attempt.attempt_id

    @classmethod
    def from_pb(
        cls, rollout: t.Rollout, resources: resources_pb2.ResourcesUpdate | None, resources_error: str = ""
    ) -> Assignment:
        update = convert.resources_update_from_pb(resources) if resources is not None else None
        return cls(
            rollout=convert.rollout_from_pb(rollout),
            resources=dict(update.resources) if update is not None else {},
            resources_id=update.resources_id if update is not None else None,
            resources_error=resources_error,
        )


@dataclass
class ReportOutcome:
    """What the store made of a report: ``error`` is None when it was recorded."""

    rollout_id: str
    attempt_id: str
    status: AttemptStatus
    error: Exception | None = None


class WorkSource(ABC):
    """Hands a runner its attempts and takes their statuses back.

    A source never holds more unfinished attempts than its capacity; a final report
    (``succeeded`` or ``failed``) frees one unit.
    """

    worker_id: str
    capacity: int

    @abstractmethod
    async def start(self) -> None:
        """Connect and announce the worker."""

    @abstractmethod
    async def next(self) -> Assignment | None:
        """The next attempt to run; ``None`` once the source is drained or closed."""

    @abstractmethod
    async def report(
        self,
        rollout_id: str,
        attempt_id: str,
        status: AttemptStatus | str,
        metadata: Mapping[str, Any] | None = None,
    ) -> ReportOutcome:
        """Record that an attempt started (``running``) or finished (``succeeded``/``failed``).

        Returns once the store has the report; an error is returned, not raised (the runner
        cannot undo an attempt the store no longer accepts, e.g. one that timed out).
        """

    async def report_soon(
        self, rollout_id: str, attempt_id: str, status: AttemptStatus | str
    ) -> asyncio.Future[ReportOutcome]:
        """Hand a report over and return without waiting for the store to record it; the future
        resolves once it has. By default this waits for the recording; a source that can send
        without waiting (the Work stream) returns as soon as the report is on its way."""
        future: asyncio.Future[ReportOutcome] = asyncio.get_running_loop().create_future()
        future.set_result(await self.report(rollout_id, attempt_id, status))
        return future

    @abstractmethod
    async def drain(self) -> None:
        """Take no new work; :meth:`next` returns what was already handed over, then ``None``."""

    @abstractmethod
    async def close(self, *, abort: bool = False) -> None:
        """Leave. Attempts still held are given up (``unresponsive``: the retry policy decides).
        ``abort`` skips waiting for outstanding reports."""


def worker_info(**extra: Any) -> dict[str, Any]:
    """What a worker tells the store about itself (kept in the worker record)."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "language": "python",
        "python": sys.version.split()[0],
        **extra,
    }


FINAL_STATUSES = frozenset({AttemptStatus.SUCCEEDED, AttemptStatus.FAILED})
