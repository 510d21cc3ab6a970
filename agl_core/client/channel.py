"""Channels to agl-server: address, TLS, token, and error mapping (retries: :mod:`agl_core.client.retry`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from agl_core.client.retry import DEFAULT_RETRY_DEADLINE
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
    :param retry_deadline: seconds a call or stream keeps retrying through an outage before it
        fails (see :mod:`agl_core.client.retry`); 0 never retries.
    """

    address: str = DEFAULT_ADDRESS
    token: str | None = None
    tls: bool = False
    root_certificates: bytes | None = None
    timeout: float = 30.0
    retry_deadline: float = DEFAULT_RETRY_DEADLINE

    @property
    def metadata(self) -> Sequence[tuple[str, str]] | None:
        return (("authorization", f"Bearer {self.token}"),) if self.token else None


def create_channel(config: ChannelConfig) -> grpc.aio.Channel:
    """A grpc.aio channel; call on the event loop that will use it."""
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # Retries are the client's own (agl_core.client.retry): gRPC's retry policy caps attempts at
        # 5 and knows no deadline, so an outage of a few seconds outlasted it.
        ("grpc.enable_retries", 0),
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
