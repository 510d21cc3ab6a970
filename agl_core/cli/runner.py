"""``agl runner``: serve an agent on this machine against an agl-server anywhere.

    agl runner --server trainer-host:4747 --agent my_agents:solver --workers 4 --capacity 8

Each worker is a process with one Work stream; ``--capacity`` attempts run at once in each. The
first Ctrl-C (or SIGTERM) lets the attempts in hand finish, the second gives them up (they are
retried elsewhere per their policy).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
import sys
from pathlib import Path
from typing import Any

from agl_core.client.channel import default_address
from agl_core.errors import InvalidArgumentError
from agl_core.execution import runner_process
from agl_core.execution.base import RunnerSpec, load_agent
from agl_core.secrets import read_token
from agl_core.store import routing
from agl_core.trainer.components import import_object


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=default_address(),
        help="agl-server's host:port (env AGL_SERVER_ADDRESS; default 127.0.0.1:4747)",
    )
    parser.add_argument(
        "--agent",
        required=True,
        metavar="MODULE:ATTR",
        help="the agent: a LitAgent, a LitAgent class or a rollout function, by import path "
        "(the current directory is importable)",
    )
    parser.add_argument("--workers", type=int, default=1, help="runner processes to start (default 1)")
    parser.add_argument("--capacity", type=int, default=1, help="attempts each worker runs at once (default 1)")
    parser.add_argument("--tracer", help="tracer by registry name or MODULE:ATTR (default: otel when installed)")
    parser.add_argument(
        "--hook",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="a Hook (instance or class) to call around every attempt (repeatable)",
    )
    parser.add_argument(
        "--worker-id",
        help="worker id (with --workers N, suffixed -0 .. -N-1); default: runner-INDEX-HOST-PID",
    )
    parser.add_argument("--max-rollouts", type=int, help="each worker stops after this many attempts")
    parser.add_argument("--heartbeat-interval", type=float, default=10.0, help="seconds between heartbeats")
    parser.add_argument(
        "--poll",
        type=float,
        metavar="SECONDS",
        help="take work with DequeueRollout long polls of SECONDS instead of the Work stream",
    )
    parser.add_argument(
        "--token",
        help="agl-server's bearer token; prefer env AGL_TOKEN or --token-file, since a command line is visible "
        "to every user of the machine",
    )
    parser.add_argument("--token-file", type=Path, help="read the token from this file (env AGL_TOKEN_FILE)")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--tls-ca", type=Path, help="PEM CA certificate(s) to trust (implies --tls)")
    parser.add_argument("--log-level", default=os.environ.get("AGL_LOG_LEVEL", "info"))
    parser.add_argument(
        "--namespace",
        default=os.environ.get("AGL_NAMESPACE", ""),
        help="the namespace (experiment) to serve (env AGL_NAMESPACE; default: the default namespace)",
    )
    parser.add_argument(
        "--queue",
        action="append",
        default=[],
        dest="queues",
        metavar="NAME",
        help="a queue to take work from (repeatable; default: the 'default' queue)",
    )
    parser.add_argument(
        "--selector",
        "--label-selector",
        dest="label_selector",
        default="",
        metavar="SELECTOR",
        help="take only rollouts whose labels match, e.g. 'lang=py' or 'lang notin (go,ts),gpu' (see docs/queues.md)",
    )


def _hook(path: str) -> Any:
    target = import_object(path)
    return target() if isinstance(target, type) else target


def run(args: argparse.Namespace) -> int:
    if args.workers < 1 or args.capacity < 1:
        print("agl runner: --workers and --capacity must be at least 1", file=sys.stderr)
        return 2
    sys.path.insert(0, os.getcwd())
    try:
        load_agent(args.agent)  # fail here, once, with a clear message, not in every worker
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        print(f"agl runner: cannot load the agent {args.agent!r}: {exc}", file=sys.stderr)
        return 2
    try:
        token = read_token(args.token, args.token_file, env="AGL_TOKEN")
    except SystemExit as exc:
        print(f"agl runner: {exc}", file=sys.stderr)
        return 2
    try:
        route = routing.Route.parse(args.namespace, args.queues, args.label_selector, "--")
    except InvalidArgumentError as exc:
        print(f"agl runner: {exc}", file=sys.stderr)
        return 2
    spec = RunnerSpec(
        namespace=route.namespace,
        queues=route.queues,
        label_selector=route.selector.text,
        agent=args.agent,
        tracer=args.tracer,
        hooks=tuple(_hook(path) for path in args.hook),
        capacity=args.capacity,
        max_rollouts=args.max_rollouts,
        heartbeat_interval=args.heartbeat_interval,
    )

    def config(index: int) -> runner_process.RunnerProcessConfig:
        worker_id = args.worker_id if args.workers == 1 else (f"{args.worker_id}-{index}" if args.worker_id else None)
        return runner_process.RunnerProcessConfig(
            spec=spec,
            server=args.server,
            index=index,
            worker_id=worker_id,
            token=token or None,
            tls=args.tls or bool(args.tls_ca),
            root_certificates=args.tls_ca.read_bytes() if args.tls_ca else None,
            poll_wait=args.poll,
            graceful_signals=True,
            log_level=args.log_level,
        )

    if args.workers == 1:
        runner_process.main(config(0))
        return 0
    return _run_workers([config(i) for i in range(args.workers)], args.log_level)


def _run_workers(configs: list[runner_process.RunnerProcessConfig], log_level: str) -> int:
    """Start one process per worker and pass stop requests on: the first signal drains them,
    the second aborts them."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)-7s agl runner: %(message)s")
    context = multiprocessing.get_context("spawn")
    stop_read, stop = context.Pipe(duplex=False)  # closing `stop` drains every worker
    processes = [
        context.Process(target=runner_process.main, args=(c, stop_read), name=f"agl-runner-{c.index}") for c in configs
    ]
    signals = 0

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            logging.info("finishing the attempts in hand (signal again to abort)")
            stop.close()
        else:
            for process in processes:
                if process.is_alive() and process.pid is not None:
                    os.kill(process.pid, signal.SIGINT)

    for process in processes:
        process.start()
    stop_read.close()
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    for process in processes:
        process.join()
    codes = [p.exitcode or 0 for p in processes]
    return max(codes) if all(c >= 0 for c in codes) else 1
