"""How agl-server's store service answers what went wrong: a request that could not be decoded,
and an exception turned into its gRPC status."""

from __future__ import annotations

import logging

import grpc

from agl_core.errors import AglError

logger = logging.getLogger("agl_server")


class MalformedRequest:
    """Stands in for a request that could not be decoded, so the handler can answer precisely."""

    def __init__(self, message_type: str, error: Exception) -> None:
        self.message_type = message_type
        self.error = error

    def describe(self) -> str:
        return (
            f"the request could not be decoded as {self.message_type} ({self.error}); check that the client "
            "was generated from the same agl.v1 protos and that messages nest at most 100 levels"
        )


async def abort_with(context: grpc.aio.ServicerContext, error: Exception, method: str) -> None:
    if isinstance(error, AglError):
        await context.abort(error.code, error.message)
    logger.exception("%s failed", method)
    await context.abort(grpc.StatusCode.INTERNAL, f"{method} failed inside agl-server: {type(error).__name__}: {error}")
