"""Runners: serve an agent on the work agl-server pushes (or an embedded store hands out).

- :class:`Runner` runs a :class:`~agl_core.litagent.LitAgent` on a :class:`WorkSource`;
- :class:`WorkStreamSource` takes work from agl-server's RunnerService Work stream;
- :class:`DequeueSource` claims it from any store directly (the embedded path);
- :class:`Hook` observes every attempt.
"""

from typing import TYPE_CHECKING

from agl_core._lazy import lazy_exports

if TYPE_CHECKING:
    from agl_core.runner.dequeue import DequeueSource
    from agl_core.runner.hooks import Hook
    from agl_core.runner.runner import Runner, RunnerStats
    from agl_core.runner.work import Assignment, ReportOutcome, WorkSource
    from agl_core.runner.work_stream import WorkStreamSource

# Loaded on first use: agl-server imports this package for its queue signal only, and the runner
# brings the tracer and OpenTelemetry with it.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Assignment": "agl_core.runner.work",
        "DequeueSource": "agl_core.runner.dequeue",
        "Hook": "agl_core.runner.hooks",
        "ReportOutcome": "agl_core.runner.work",
        "Runner": "agl_core.runner.runner",
        "RunnerStats": "agl_core.runner.runner",
        "WorkSource": "agl_core.runner.work",
        "WorkStreamSource": "agl_core.runner.work_stream",
    },
)

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
