"""Runners: serve an agent on the work agl-server pushes (or an embedded store hands out).

- :class:`Runner` runs a :class:`~agl_core.litagent.LitAgent` on a :class:`WorkSource`;
- :class:`WorkStreamSource` takes work from agl-server's RunnerService Work stream;
- :class:`DequeueSource` claims it from any store directly (the embedded path);
- :class:`Hook` observes every attempt.
"""

from agl_core.runner.dequeue import DequeueSource
from agl_core.runner.hooks import Hook
from agl_core.runner.runner import Runner, RunnerStats
from agl_core.runner.work import Assignment, ReportOutcome, WorkSource
from agl_core.runner.work_stream import WorkStreamSource

__all__ = [
    "Assignment",
    "DequeueSource",
    "Hook",
    "ReportOutcome",
    "Runner",
    "RunnerStats",
    "WorkSource",
    "WorkStreamSource",
]
