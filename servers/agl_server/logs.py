"""Logging for agl-server: readable text for a terminal, JSON lines for log collectors.

The JSON formatter is a few lines on top of the standard library, so the daemon needs no
logging dependency; every ``extra={...}`` field of a record becomes a JSON field.

In JSON mode nothing else may reach stderr as raw text: gRPC's C core (through absl) and any
other native library write straight to file descriptor 2, and so do Python's own last words (an
uncaught traceback, a warning). :func:`capture_stderr` points descriptor 2 at a pipe whose every
line comes back as a JSON record (logger ``stderr``; gRPC core lines such as ``E1202 ...
file.cc:12] text`` go to logger ``grpc`` with their level), written by the log handler to the original stderr.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import re
import sys
import termios
import threading
import time

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(fields)s")

    def format(self, record: logging.LogRecord) -> str:
        extras = {
            k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_") and k != "fields"
        }
        record.fields = "".join(f" {k}={v}" for k, v in extras.items())
        return super().format(record)


# absl's prefix: severity letter, MMDD, time, thread id, file:line]
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([^\]]+)\] ?(.*)$")
_ABSL_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}
_stderr_logger = logging.getLogger("stderr")
_grpc_logger = logging.getLogger("grpc")


def _log_stderr_line(line: str) -> None:
    match = _ABSL_LINE.match(line)
    if match:
        severity, where, text = match.groups()
        _grpc_logger.log(_ABSL_LEVELS[severity], text, extra={"source": "grpc-core", "where": where})
    elif line.strip():
        _stderr_logger.warning(line, extra={"source": "stderr"})


class _StderrPump:
    """Reads the pipe that descriptor 2 now points at and logs each line."""

    def __init__(self, read_fd: int) -> None:
        self.read_fd = read_fd
        self.thread = threading.Thread(target=self._run, name="agl-stderr-to-json", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with os.fdopen(self.read_fd, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    _log_stderr_line(raw.decode(errors="replace").rstrip("\r"))
            if pending:
                _log_stderr_line(pending.decode(errors="replace"))

    def drain(self, timeout: float = 2.0) -> None:
        """At exit: wait (briefly) until what was written to descriptor 2 has been logged."""
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        deadline = time.monotonic() + timeout
        buffered = bytearray(4)
        while time.monotonic() < deadline:
            try:
                fcntl.ioctl(self.read_fd, termios.FIONREAD, buffered)
            except OSError:
                return  # closed: everything was read
            if int.from_bytes(buffered, sys.byteorder) == 0:
                time.sleep(0.02)  # the last line read may still be on its way through the handler
                return
            time.sleep(0.01)


def capture_stderr() -> int:
    """Point descriptor 2 at a pipe whose lines are logged; returns a descriptor of the original stderr."""
    original = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    pump = _StderrPump(read_fd)
    atexit.register(pump.drain)
    return original


def setup_logging(fmt: str = "text", level: str = "info") -> None:
    if fmt == "json":
        # The handler writes to the real stderr; everything else that writes to descriptor 2 (gRPC's
        # C core, a traceback, sys.stderr) comes back through the pipe as JSON lines.
        stream = os.fdopen(capture_stderr(), "w", buffering=1, encoding="utf-8", errors="replace")
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
