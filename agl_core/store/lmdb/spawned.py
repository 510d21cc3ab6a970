"""A child process started with ``posix_spawn``, its stdout read on the event loop.

agl-server's process runs gRPC's threads, and gRPC installs fork handlers that can abort a child
forked while they run (seen as SIGABRT and "ev_epoll1_linux.cc ... Check failed" in about one
backup in seven under load). asyncio's and uvloop's subprocess support start children with
``fork``; glibc's ``posix_spawn`` uses ``clone(CLONE_VFORK)`` and runs no fork handlers, so a child
started this way never executes code of the parent before ``exec``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence


class SpawnedChild:
    """A running child: :meth:`read` its stdout, then :meth:`finish`; :meth:`kill` to abandon it."""

    def __init__(self, pid: int, stdout: asyncio.StreamReader, transport: asyncio.BaseTransport, stderr_fd: int):
        self.pid = pid
        self._stdout = stdout
        self._transport = transport
        self._stderr_fd = stderr_fd
        self.returncode: int | None = None

    @classmethod
    async def spawn(cls, argv: Sequence[str], limit: int = 1 << 21) -> SpawnedChild:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            # The pipe ends are close-on-exec (Python's default); the dup2 copies on 1 and 2 are not.
            pid = os.posix_spawn(  # noqa: ASYNC221  # returns once the child is exec'd, without waiting for it
                argv[0],
                list(argv),
                dict(os.environ),
                file_actions=[(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)],
            )
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        reader = asyncio.StreamReader(limit=limit)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(out_r, "rb", buffering=0)
        )
        return cls(pid, reader, transport, err_r)

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes of stdout; b"" at its end."""
        return await self._stdout.read(n)

    async def finish(self) -> tuple[int, bytes]:
        """Wait for the child to end: (exit code, negative for a signal; its stderr)."""
        loop = asyncio.get_running_loop()
        errors = await loop.run_in_executor(None, _read_all, self._stderr_fd)
        _, status = await loop.run_in_executor(None, os.waitpid, self.pid, 0)
        self.returncode = os.waitstatus_to_exitcode(status)
        self._transport.close()
        return self.returncode, errors

    async def kill(self) -> None:
        """End the child now (if it still runs) and reap it."""
        self._transport.close()
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            loop = asyncio.get_running_loop()
            _, status = await loop.run_in_executor(None, os.waitpid, self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
            with contextlib.suppress(OSError):
                os.close(self._stderr_fd)


def _read_all(fd: int) -> bytes:
    parts = []
    try:
        while part := os.read(fd, 65536):
            parts.append(part)
    finally:
        os.close(fd)
    return b"".join(parts)
