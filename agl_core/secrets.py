"""Tokens for the command-line programs, and the warning for a service open to the network.

A token given as ``--token`` is readable by every user of the machine in ``/proc/PID/cmdline``
and ``ps``; the programs also take it from an environment variable or a file (``--token-file``,
or an environment variable naming the file), which only the owner can read.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path


def read_token(
    token: str | None, token_file: str | os.PathLike[str] | None, *, env: str, option: str = "--token"
) -> str | None:
    """The token from ``token_file`` or ``token`` (command-line options), else from the file named by
    ``$<env>_FILE``, else ``$<env>``.

    :raises SystemExit: the file cannot be read or is empty (a typo must not silently turn auth off).
    """
    if token and not token_file:
        return token
    path = token_file or os.environ.get(f"{env}_FILE") or None
    if path is not None:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise SystemExit(f"cannot read the token file {str(path)!r} ({option}-file / {env}_FILE): {exc}") from None
        if not value:
            raise SystemExit(f"the token file {str(path)!r} ({option}-file / {env}_FILE) is empty")
        return value
    return os.environ.get(env) or None


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (``0.0.0.0``, ``::`` and names do not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(program: str, host: str, *, token: bool, tls: bool, token_hint: str) -> str | None:
    """What to say at start-up when ``program`` serves an address other machines reach without a
    token or TLS; None when there is nothing to say."""
    if is_loopback(host):
        return None
    if not token:
        return (
            f"{program} serves {host} with no token: anyone who can reach this port may call it. "
            f"Set a token ({token_hint}){'' if tls else ' and TLS'}, or bind 127.0.0.1"
        )
    if not tls:
        return f"{program} serves {host} without TLS: the token and the data cross the network in clear"
    return None
