"""Channels to agl-server: address, TLS, token, retries on UNAVAILABLE, and error mapping."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from agl_core.errors import AglError, UnavailableError, error_for_code

DEFAULT_ADDRESS = "127.0.0.1:4747"
SERVICE = "agl.v1.LightningStoreService"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def default_address() -> str:
    return os.environ.get("AGL_SERVER_ADDRESS", DEFAULT_ADDRESS)


@dataclass(frozen=True)
class ChannelConfig:
    """How to reach agl-server.

    :param address: ``host:port``.
    :param token: sent as ``authorization: Bearer <token>`` (default ``$AGL_TOKEN``).
    :param root_certificates: PEM bytes to trust for TLS; ``tls=True`` with none uses the system roots.
    :param timeout: default deadline of a call in seconds (long polls get theirs from their wait).
    :param retries: attempts of a call that fails with UNAVAILABLE (gRPC's own retry policy,
        with exponential backoff), the first included.
    """

    address: str = DEFAULT_ADDRESS
    token: str | None = None
    tls: bool = False
    root_certificates: bytes | None = None
    timeout: float = 30.0
    retries: int = 5

    @property
    def metadata(self) -> Sequence[tuple[str, str]] | None:
        return (("authorization", f"Bearer {self.token}"),) if self.token else None


def _service_config(retries: int) -> str:
    # Calls that fail with UNAVAILABLE before the server saw them (connection refused, server
    # restarting) are retried by the gRPC core itself. Requests that create things carry ids chosen
    # by the client, so a retry of one that did reach the server is answered, not applied twice.
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": SERVICE}],
                    "retryPolicy": {
                        "maxAttempts": max(2, min(retries, 5)),
                        "initialBackoff": "0.1s",
                        "maxBackoff": "2s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


def create_channel(config: ChannelConfig) -> grpc.aio.Channel:
    """A grpc.aio channel; call on the event loop that will use it."""
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.service_config", _service_config(config.retries)),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]
    if config.tls or config.root_certificates:
        credentials = grpc.ssl_channel_credentials(root_certificates=config.root_certificates)
        return grpc.aio.secure_channel(config.address, credentials, options=options)
    return grpc.aio.insecure_channel(config.address, options=options)


def map_rpc_error(error: grpc.aio.AioRpcError | grpc.RpcError, address: str) -> AglError:
    """The agl exception for a failed call, with advice when the server cannot be reached."""
    code = error.code()  # type: ignore[attr-defined]
    details = error.details() or code.name  # type: ignore[attr-defined]
    if code == grpc.StatusCode.UNAVAILABLE:
        return UnavailableError(
            f"agl-server at {address} is not reachable ({details}). Start it with "
            f"`agl-server --port {address.rsplit(':', 1)[-1]}`, or point AGL_SERVER_ADDRESS at a running one."
        )
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return error_for_code(code, f"{details} (set the token with AGL_TOKEN or token=...)")
    return error_for_code(code, details)
