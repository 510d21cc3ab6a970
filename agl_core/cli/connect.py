"""Connecting the ``agl`` commands to agl-server, and turning failures into one line and an exit code.

The options are the ones ``agl runner`` takes, with the same environment variables
(``AGL_SERVER_ADDRESS``, ``AGL_TOKEN``, ``AGL_TOKEN_FILE``), so one shell set-up serves both.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from agl_core.client import GrpcStore
from agl_core.client.channel import default_address
from agl_core.errors import AglError
from agl_core.secrets import read_token

T = TypeVar("T")

# Exit codes: 1 the server said no (not found, refused) or could not be reached; 2 bad usage
# (argparse's own); 130 interrupted.
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class CliError(Exception):
    """A failure to report as one line (``agl: <message>``) with an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--server``, the token, TLS, the call timeout, and ``--json``."""
    options = parser.add_argument_group("connection and output")
    options.add_argument(
        "--server",
        default=default_address(),
        help="agl-server's host:port (env AGL_SERVER_ADDRESS; default 127.0.0.1:4747)",
    )
    options.add_argument(
        "--token",
        help="agl-server's bearer token; prefer env AGL_TOKEN or --token-file, since a command line is visible "
        "to every user of the machine",
    )
    options.add_argument("--token-file", type=Path, help="read the token from this file (env AGL_TOKEN_FILE)")
    options.add_argument("--tls", action="store_true", help="connect with TLS")
    options.add_argument("--tls-ca", type=Path, help="PEM CA certificate(s) to trust (implies --tls)")
    options.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="deadline of each call (default 30)"
    )
    options.add_argument(
        "--retry-deadline",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="how long to keep retrying while the server is unreachable before giving up (default 3)",
    )
    options.add_argument("--json", action="store_true", help="print JSON (the shapes are in docs/cli.md)")


def check_address(address: str) -> str:
    """``address`` if it is ``HOST:PORT`` (or a gRPC target with a scheme, ``unix:/path``,
    ``dns:///host:port``); else a usage error that shows the form."""
    if address.startswith("unix:") or "://" in address:
        return address
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(
            f"--server {address!r} is not HOST:PORT with a port from 1 to 65535 (for example 127.0.0.1:4747)",
            EXIT_USAGE,
        )
    return address


def open_store(args: argparse.Namespace) -> GrpcStore:
    """A client of the server the options name (call on the event loop that will use it)."""
    address = check_address(args.server)
    try:
        token = read_token(args.token, args.token_file, env="AGL_TOKEN")
    except SystemExit as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        certificates = args.tls_ca.read_bytes() if args.tls_ca else None
    except OSError as exc:
        raise CliError(f"cannot read --tls-ca {str(args.tls_ca)!r}: {exc}", EXIT_USAGE) from None
    return GrpcStore(
        address,
        token=token or "",
        tls=args.tls or certificates is not None,
        root_certificates=certificates,
        timeout=args.timeout,
        retry_deadline=args.retry_deadline,
    )


def with_store(args: argparse.Namespace, body: Callable[[GrpcStore], Awaitable[T]]) -> T:
    """Run ``body(store)`` on a fresh event loop and close the client afterwards.

    :raises CliError: for any agl error (server down, unknown id, refused transition).
    """

    async def main() -> T:
        store = open_store(args)
        try:
            return await body(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except AglError as exc:
        raise CliError(str(exc)) from None


def report(program: str, run: Callable[[], int]) -> int:
    """Call ``run`` and turn a :class:`CliError`, a broken pipe or Ctrl-C into a message and an exit code."""
    try:
        return run()
    except CliError as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `agl export --out - | head`: the reader went away. Point stdout at /dev/null so the
        # interpreter's final flush does not fail again, and exit as a tool killed by SIGPIPE does.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
