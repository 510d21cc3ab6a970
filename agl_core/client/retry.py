"""The retry policy of the agl clients (Python, Go and TypeScript alike; see docs/retry.md).

- Unary calls are retried on UNAVAILABLE only: any other status is the server's answer (or the
  call's own deadline), and trying again would get the same. Retrying is safe: requests that create
  things carry ids the client chose, and the server answers a repeat instead of applying it twice.
- Streams (IngestSpans, RunnerService.Work, WatchRollouts) are reopened on UNAVAILABLE, CANCELLED
  (the server going away cancels its open streams; a stream this client cancelled is never
  reopened), UNKNOWN and INTERNAL (a connection reset mid-stream) and DEADLINE_EXCEEDED. ABORTED
  is never retried: on the Work stream it means another process took the worker id over.
- Back-off: the n-th consecutive failure waits min(100 ms * 2**(n-1), 2 s), times a random 50-100 %
  (so clients cut off together do not come back together). A success resets it. A status that is
  not retried fails the call at once, with no wait.
- Giving up: one deadline, ``retry_deadline`` (default 60 s), counted from the first failure since
  the last success. No count of attempts; a unary call also stops at its own deadline.
"""

from __future__ import annotations

import random
import time

import grpc

DEFAULT_RETRY_DEADLINE = 60.0
INITIAL_BACKOFF = 0.1
MAX_BACKOFF = 2.0

UNARY_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})
STREAM_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)


def backoff(failures: int) -> float:
    """Seconds to wait after the ``failures``-th consecutive failure (1 for the first)."""
    return min(INITIAL_BACKOFF * 2 ** max(failures - 1, 0), MAX_BACKOFF) * random.uniform(0.5, 1.0)


class Outage:
    """The retry state of one call or stream: failures since the last success, against the deadline.

    :param deadline: seconds from the first failure after which :meth:`failed` gives up.
    """

    def __init__(self, deadline: float = DEFAULT_RETRY_DEADLINE) -> None:
        if deadline < 0:
            raise ValueError(f"retry_deadline is {deadline}; give 0 (no retries) or more seconds")
        self.deadline = deadline
        self.failures = 0
        self.since: float | None = None

    def succeeded(self) -> None:
        self.failures, self.since = 0, None

    def failed(self) -> float | None:
        """Count a retryable failure: the seconds to wait before the next try, or None to give up."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
        self.failures += 1
        remaining = self.since + self.deadline - now
        if remaining <= 0:
            return None
        return min(backoff(self.failures), remaining)

    @property
    def elapsed(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since
