"""The Python client of agl-server: the store API over gRPC."""

from __future__ import annotations

from typing import Any

from agl_core.client.backend import GrpcBackend
from agl_core.client.channel import ChannelConfig, default_address
from agl_core.client.retry import DEFAULT_RETRY_DEADLINE
from agl_core.store.base import LightningStore


class GrpcStore(LightningStore):
    """A :class:`LightningStore` whose data lives in agl-server.

    :param address: ``host:port`` (default ``$AGL_SERVER_ADDRESS`` or ``127.0.0.1:4747``).
    :param token: bearer token if the server requires one (default ``$AGL_TOKEN``).
    :param tls: use TLS; ``root_certificates`` (PEM bytes) to trust a private CA.
    :param timeout: default deadline of a call in seconds.
    :param retry_deadline: seconds calls and streams keep retrying through an outage before they
        fail (docs/retry.md); ``reconnect_deadline`` is an older name for it.
    :param streamer_options: tuning of span batching (``max_batch_spans``, ``max_batch_bytes``,
        ``max_inflight_batches``, ``max_queued_spans``).
    """

    backend: GrpcBackend

    def __init__(
        self,
        address: str | None = None,
        *,
        token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        timeout: float = 30.0,
        retry_deadline: float | None = None,
        **streamer_options: Any,
    ) -> None:
        import os

        if "reconnect_deadline" in streamer_options:
            reconnect_deadline = streamer_options.pop("reconnect_deadline")
            retry_deadline = reconnect_deadline if retry_deadline is None else retry_deadline
        config = ChannelConfig(
            address=address or default_address(),
            token=token if token is not None else os.environ.get("AGL_TOKEN") or None,
            tls=tls,
            root_certificates=root_certificates,
            timeout=timeout,
            retry_deadline=DEFAULT_RETRY_DEADLINE if retry_deadline is None else retry_deadline,
        )
        super().__init__(GrpcBackend(config, **streamer_options))

    @property
    def address(self) -> str:
        return self.backend.config.address

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the server accepts connections; raises UnavailableError after ``timeout``."""
        await self.backend.wait_ready(timeout)

    async def flush_spans(self) -> None:
        """Wait until every span handed to ``add_spans`` so far is acknowledged."""
        await self.backend.flush_spans()


__all__ = ["ChannelConfig", "GrpcBackend", "GrpcStore"]
