"""Running agl-server as a child process: for examples, tests and the client-server strategy.

``ServerProcess(data_dir).start()`` launches ``python -P -m agl_server`` on a free port, waits until
it serves (it writes a ready file once the store is open and the port bound) and knows its
address. ``stop()`` sends SIGTERM and escalates to SIGKILL; ``kill()`` is a crash on purpose.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path


class ServerStartError(RuntimeError):
    pass


def _parent_death_signal() -> None:
    """In the child before exec: SIGTERM when the parent goes (Linux only; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


class ServerProcess:
    """An agl-server child process.

    :param data_dir: the LMDB data directory.
    :param port: 0 picks a free port (the default).
    :param args: further ``agl-server`` arguments (``--durability nosync``, ``--token ...``).
    :param log_path: where its log goes (default: a file next to the ready file, in a scratch
        directory removed when this object is, or at exit).
    :param die_with_parent: the server gets SIGTERM when the thread that started it ends (Linux
        ``PR_SET_PDEATHSIG``): for a parent that may be SIGKILLed, like a Ray actor, so that no
        server outlives it.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        python: str = sys.executable,
        die_with_parent: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.args = list(args)
        self.env = dict(env) if env is not None else None
        # The ready file, and the log unless log_path says where: removed with this object (or at
        # exit), so that the servers of a long-lived process or of a test run leave no directories.
        self._scratch = Path(tempfile.mkdtemp(prefix="agl-server-"))
        self._remove_scratch = weakref.finalize(self, shutil.rmtree, self._scratch, ignore_errors=True)
        self.log_path = Path(log_path) if log_path else self._scratch / "server.log"
        self.python = python
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None
        self.bound_port: int | None = None
        # The HTTP listener's port, when started with --http-port.
        self.http_port: int | None = None

    @property
    def address(self) -> str:
        if self.bound_port is None:
            raise RuntimeError("the server is not started")
        return f"{self.host}:{self.bound_port}"

    @property
    def http_url(self) -> str:
        """``http://host:port`` of the HTTP listener (start with ``args=["--http-port", "0"]``)."""
        if self.http_port is None:
            raise RuntimeError("the server is not started, or without --http-port")
        return f"http://{self.host}:{self.http_port}"

    def start(self, timeout: float = 120.0) -> ServerProcess:
        """Launch and return once it serves. ``timeout`` is only a give-up bound: it returns as
        soon as the server is ready, and a heavily loaded machine can take tens of seconds to start
        a Python process that imports gRPC, LMDB and the plugins."""
        ready = self._scratch / "ready.json"
        ready.unlink(missing_ok=True)
        command = [
            self.python,
            # The server's code is the interpreter's agl (installed, or on PYTHONPATH), as the agl-server
            # command runs it: without -P, "-m" would first import agl_server and agl_core from the
            # caller's working directory, such as a checkout of another version.
            "-P",
            "-m",
            "agl_server",
            "--host",
            self.host,
            "--port",
            str(self.port if self.bound_port is None else self.bound_port),
            "--data-dir",
            str(self.data_dir),
            "--ready-file",
            str(ready),
            *self.args,
        ]
        env = dict(os.environ if self.env is None else self.env)
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_parent_death_signal if self.die_with_parent else None,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready.exists():
                info = json.loads(ready.read_text())
                self.bound_port = int(info["port"])
                self.http_port = info.get("http_port")
                if self.http_port is not None and "--http-port" in self.args:
                    # A restart binds the same port again (like the gRPC one).
                    self.args[self.args.index("--http-port") + 1] = str(self.http_port)
                return self
            if self.process.poll() is not None:
                raise ServerStartError(
                    f"agl-server exited with code {self.process.returncode} before serving:\n{self.log_tail()}"
                )
            time.sleep(0.02)
        self.kill()
        raise ServerStartError(f"agl-server did not serve within {timeout:.0f}s:\n{self.log_tail()}")

    def restart(self, timeout: float = 120.0) -> ServerProcess:
        """Start again on the same port and data directory (after ``stop`` or ``kill``)."""
        return self.start(timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``. Returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def close(self, timeout: float = 15.0) -> int | None:
        """:meth:`stop`, then remove the scratch directory at once (the ready file, and the default
        log with it), for a process that may not exit normally: a Ray actor is killed, so the
        removal that otherwise happens when this object goes or at exit would never run."""
        code = self.stop(timeout)
        self._remove_scratch()
        return code

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to flush anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def __enter__(self) -> ServerProcess:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
