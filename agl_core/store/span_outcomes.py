"""What became of the spans that reached one entry point of agl-server: accepted, duplicate, rejected.

A rejected span is easy to miss: exporters ignore OTLP's ``partial_success`` and a runner may not
read its acks closely. Each entry point (gRPC IngestSpans, OTLP/gRPC, OTLP/HTTP) keeps one of these;
the counts are plain integers bumped on the event loop (no lock, next to nothing on the hot path),
read at scrape time by agl-server's metrics, and each rejection reason is logged at most once per
``log_interval`` seconds, with how many spans were rejected for it since its last line.
"""

from __future__ import annotations

import logging
import time

# Rejection reasons are metric label values: a short, fixed vocabulary (never a message or an id).
REASON_BY_CODE = {
    3: "invalid_argument",
    5: "not_found",
    8: "resource_exhausted",
    9: "failed_precondition",
    11: "out_of_range",
}


def reason_for_code(code: int) -> str:
    """The rejection reason label of an ``ItemError.code`` (a google.rpc.Code number)."""
    return REASON_BY_CODE.get(code, "other")


class SpanOutcomes:
    """Counts of one entry point.

    :param transport: its name in metrics and logs (``grpc``, ``otlp_grpc``, ``otlp_http``).
    :param log_interval: the least time between two log lines about one reason.
    """

    def __init__(self, transport: str, logger: logging.Logger, log_interval: float = 10.0) -> None:
        self.transport = transport
        self.accepted = 0
        self.duplicate = 0
        self.rejected: dict[str, int] = {}
        self._logger = logger
        self._interval = log_interval
        self._last_log: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def stored(self, accepted: int, duplicate: int = 0) -> None:
        self.accepted += accepted
        self.duplicate += duplicate

    def reject(self, reason: str, count: int, detail: str) -> None:
        """Count ``count`` spans rejected for ``reason`` (a label) and log ``detail`` (rate-limited)."""
        if count <= 0:
            return
        self.rejected[reason] = self.rejected.get(reason, 0) + count
        now = time.monotonic()
        pending = self._unlogged.get(reason, 0) + count
        if now - self._last_log.get(reason, -self._interval) < self._interval:
            self._unlogged[reason] = pending
            return
        self._last_log[reason] = now
        self._unlogged[reason] = 0
        self._logger.warning(
            "%s rejected %d span(s) (%s): %s",
            self.transport,
            pending,
            reason,
            detail,
            extra={"transport": self.transport, "reason": reason, "rejected_spans": pending},
        )
