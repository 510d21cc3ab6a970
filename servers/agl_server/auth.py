"""Bearer-token authentication for agl-server: the check on a call's metadata.

The check runs in :class:`agl_server.guard.RequestGuard` before anything reads the request body,
so an unauthenticated caller never gets agl-server to parse its bytes.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

# Health checks stay open so load balancers and orchestrators can probe without a token.
OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})


class TokenCheck:
    """Compares ``authorization: Bearer <token>`` in constant time."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def refusal(self, method: str, metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
        """None when the call may go on; else the message of its UNAUTHENTICATED status."""
        if method in OPEN_METHODS:
            return None
        given = dict(metadata or ()).get("authorization", "")
        if isinstance(given, str):
            given = given.encode()
        if given and hmac.compare_digest(given, self._expected):
            return None
        if not given:
            return "missing authorization: send 'authorization: Bearer <token>' (AGL_TOKEN)"
        return "the bearer token is not valid for this agl-server"
