"""What the trainer runs beside verl: the store client, the LLM proxy and the rollout daemon, on one
event loop thread, behind a synchronous API (the verl trainer is synchronous)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from agl_llm_proxy import LLMProxy, ProxyConfig

from agl_core.client import GrpcStore
from agl_core.types import ProxyLLM
from agl_plugins.verl.config import AglSettings
from agl_plugins.verl.daemon import RolloutBatch, RolloutDaemon
from agl_plugins.verl.loop import LoopThread

logger = logging.getLogger(__name__)


def _advertised_host(bind: str) -> str:
    """The address runners on other machines reach a server bound to ``bind`` at."""
    if bind not in ("0.0.0.0", "::", ""):
        return bind
    try:
        import ray

        if ray.is_initialized():
            return str(ray.util.get_node_ip_address()).strip("[]")
    except ImportError:
        pass
    return socket.gethostbyname(socket.gethostname())


class RolloutService:
    """The rollout side of a training run.

    :param settings: the ``agl`` section of the config.
    :param model: the model name runners send (None: the first model the backends list).
    """

    def __init__(self, settings: AglSettings, *, model: str | None = None) -> None:
        self.settings = settings
        self.model = model
        self._loop: LoopThread | None = None
        self.store: GrpcStore | None = None
        self.proxy: LLMProxy | None = None
        self.daemon: RolloutDaemon | None = None

    def start(self, backends: Sequence[str]) -> RolloutService:
        """Connect to agl-server and serve the proxy in front of ``backends`` (vLLM server addresses)."""
        self._loop = LoopThread()
        self._loop.run(self._start(list(backends)))
        return self

    async def _start(self, backends: list[str]) -> None:
        self.store = GrpcStore(self.settings.store)
        await self.store.wait_ready()
        options = self.settings.llm_proxy
        config = ProxyConfig(
            request_token_ids=options.request_token_ids,
            retry_after=options.retry_after,
            read_timeout=options.read_timeout,
        )
        self.proxy = LLMProxy(backends, store=self.store, host=options.host, port=options.port, config=config)
        await self.proxy.start()
        self.proxy.host = _advertised_host(options.host)
        self.daemon = RolloutDaemon(self.store, adapter=self.settings.adapter.build(), settings=self.settings.rollout)
        if self.model is None and backends:
            self.model = await self._served_model()
        logger.info("agl rollouts: store %s, LLM proxy %s, model %s", self.store.address, self.proxy.url, self.model)

    async def _served_model(self) -> str:
        assert self.proxy is not None
        async with aiohttp.ClientSession() as http, http.get(f"{self.proxy.url}/v1/models") as response:
            body = await response.json()
        try:
            return str(body["data"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise RuntimeError(f"the backends list no model ({body}); set the model name explicitly") from None

    def update_backends(self, backends: Sequence[str]) -> None:
        assert self.proxy is not None, "start() first"
        self.proxy.update_backends(backends)

    def resource(self, sampling_parameters: Mapping[str, Any] | None = None) -> ProxyLLM:
        """The LLM resource runners get: the proxy, with a per-attempt route."""
        assert self.proxy is not None and self.model is not None, "start() first"
        return self.proxy.as_resource(self.model, sampling_parameters)

    def rollout(
        self,
        tasks: Sequence[Any],
        *,
        n: int,
        mode: str = "train",
        step: int = 0,
        uids: Sequence[str] | None = None,
        sampling_parameters: Mapping[str, Any] | None = None,
    ) -> RolloutBatch:
        """One rollout phase (see :meth:`RolloutDaemon.rollout`); returns within the step deadline."""
        assert self._loop is not None and self.daemon is not None, "start() first"
        resources = {self.settings.rollout.resource_name: self.resource(sampling_parameters)}
        return self._loop.run(
            self.daemon.rollout(tasks, resources=resources, n=n, mode=mode, step=step, uids=uids),
            # The daemon keeps its own deadline; this one only guards against a wedged loop.
            timeout=self.settings.rollout.step_timeout + 120,
        )

    def close(self) -> None:
        if self._loop is None:
            return
        self._loop.run(self._close())
        self._loop.close()
        self._loop = None

    async def _close(self) -> None:
        if self.proxy is not None:
            await self.proxy.stop()
        if self.store is not None:
            await self.store.close()


__all__ = ["RolloutService"]
