"""The actors of the ``ray`` strategy: agl-server on a node, and runners.

Both are plain classes; the strategy wraps them with ``ray.remote`` and its placement options.
A runner actor is the ``cs`` strategy's runner process (:func:`runner_process.serve`) on a
thread of a Ray worker: work comes on agl-server's Work stream, spans go to its ingestion stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agl_core.execution import runner_process
from agl_server.process import ServerProcess

logger = logging.getLogger(__name__)

# Worker ids of runner actors: ray-runner-INDEX-NODE-PID (a restarted actor is a new worker).
RUNNER_ID_PREFIX = "ray-runner-"


class ServerActor:
    """agl-server as a child process of this actor, its data directory on this node's disk.

    The server gets SIGTERM if this actor's process dies (``die_with_parent``), so a killed actor
    leaves no server behind. It is not restarted elsewhere: its data is on this node.

    :param data_dir: the data directory on the node (default: a temporary one, removed by
        :meth:`stop` unless ``keep_data``).
    :param host: the interface to bind (default: the node's IP as Ray knows it, which the
        runners on other nodes reach).
    :param advertise_host: the host name the runners use instead of the node's IP (a name the
        TLS certificate carries, a Kubernetes Service).
    """

    def __init__(
        self,
        data_dir: str | None,
        *,
        keep_data: bool,
        host: str | None,
        port: int,
        args: Sequence[str],
        token: str | None,
        advertise_host: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.advertise_host = advertise_host
        self.keep_data = keep_data
        self.host = host
        self.port = port
        self.args = list(args)
        self.token = token
        self.server: ServerProcess | None = None
        self.temporary: Path | None = None

    def start(self) -> tuple[str, str, str]:
        """Start the server; returns its address for the runners, the data directory and the node id."""
        import ray

        node_ip = ray.util.get_node_ip_address()
        host = self.host or node_ip
        data_dir = Path(self.data_dir) if self.data_dir else None
        if data_dir is None:
            self.temporary = data_dir = Path(tempfile.mkdtemp(prefix="agl-ray-"))
        # The token goes by environment: a command line is readable by every user of the node.
        env = {**os.environ, "AGL_TOKEN": self.token} if self.token else None
        self.server = ServerProcess(
            data_dir, host=host, port=self.port, args=self.args, env=env, die_with_parent=True
        ).start()
        advertised = self.advertise_host or (node_ip if host in ("0.0.0.0", "::", "") else host)
        node_id = ray.get_runtime_context().get_node_id()
        return f"{advertised}:{self.server.bound_port}", str(data_dir), node_id

    def pid(self) -> int | None:
        return self.server.process.pid if self.server and self.server.process else None

    def stop(self) -> int | None:
        """Stop the server (SIGTERM, then SIGKILL); returns its exit code."""
        # close, not stop: Ray kills the actor's process, so nothing would remove the server's
        # scratch directory at exit.
        code = self.server.close() if self.server is not None else None
        if self.temporary is not None and not self.keep_data:
            shutil.rmtree(self.temporary, ignore_errors=True)
        return code


class _Ready:
    """What :func:`runner_process.serve` tells once the server has welcomed the runner (it wants
    a pipe's write end: ``send_bytes`` and ``close``); here a thread event."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def send_bytes(self, _: bytes) -> None:
        self.event.set()

    def close(self) -> None:
        pass


class RunnerActor:
    """One runner. :meth:`run` serves until :meth:`stop` (it runs on one of the actor's threads,
    the others answer :meth:`wait_ready` and :meth:`stop` meanwhile).

    Restarted by Ray after its process or node died, it is a new runner (a new worker id: the
    node and the pid are in it); the attempts the dead one held were given up by agl-server
    when its Work stream broke, and are retried per their rollout's retry policy.
    """

    def __init__(self, config: runner_process.RunnerProcessConfig) -> None:
        import ray

        node_id = ray.get_runtime_context().get_node_id()
        self.config = dataclasses.replace(
            config,
            worker_id=config.worker_id or f"{RUNNER_ID_PREFIX}{config.index}-{node_id[:12]}-{os.getpid()}",
            handle_signals=False,
        )
        self.node_id = node_id
        self.ready = _Ready()
        self.stopping = threading.Event()
        logging.basicConfig(
            level=config.log_level.upper(),
            format=f"%(asctime)s %(levelname)-7s ray-runner-{config.index}: %(message)s",
        )

    def run(self) -> dict[str, Any]:
        """Serve until stopped; returns what the runner did (``RunnerStats`` as a dict)."""
        stats = asyncio.run(runner_process.serve(self.config, self.stopping, self.ready))  # type: ignore[arg-type]
        return {**dataclasses.asdict(stats), "worker_id": self.config.worker_id, "node_id": self.node_id}

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """Block until agl-server has welcomed this runner (or ``timeout``); says where it runs."""
        ready = self.ready.event.wait(timeout)
        return {"worker_id": self.config.worker_id or "", "node_id": self.node_id, "ready": ready}

    def stop(self) -> None:
        """Drain: no new work; the attempts in hand finish, then :meth:`run` returns."""
        self.stopping.set()
