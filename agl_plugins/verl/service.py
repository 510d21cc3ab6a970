"""What the trainer runs beside verl: the store client, the LLM proxy and the rollout daemon, on one
event loop, behind a synchronous API (the verl trainer is synchronous).

Run by agl's ``Trainer``, the service is given the Trainer's store and the loop it is bound to
(:class:`~agl_plugins.verl.loop.LoopHandle`); standalone, it opens a ``GrpcStore`` to
``agl.store`` on a loop thread of its own.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from agl_llm_proxy import LLMProxy, ProxyConfig

from agl_core.client import GrpcStore
from agl_core.types import ProxyLLM, Resource, RolloutConfig
from agl_plugins.verl.config import AglSettings
from agl_plugins.verl.daemon import RolloutBatch, RolloutDaemon
from agl_plugins.verl.loop import LoopHandle, LoopRunner, LoopThread

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
    :param store: the store to use (the Trainer's), bound to ``loop``; None: a ``GrpcStore`` to
        ``settings.store``, opened (and closed) by the service on a loop thread of its own.
    :param loop: the loop ``store`` is bound to (it runs in another thread than the trainer's).
    :param rollout_defaults: what null keys of ``agl.rollout`` inherit (the Trainer's rollout_config).
    :param resources: published with the LLM resource at every step (the Trainer's initial resources).
    """

    def __init__(
        self,
        settings: AglSettings,
        *,
        model: str | None = None,
        store: Any = None,
        loop: Any = None,
        rollout_defaults: RolloutConfig | None = None,
        resources: Mapping[str, Resource] | None = None,
    ) -> None:
        if (store is None) != (loop is None):
            raise ValueError("give the store together with the event loop it is bound to")
        self.settings = settings
        self.model = model
        self._given_store = store
        self._given_loop = loop
        self.rollout_defaults = rollout_defaults
        self.resources = dict(resources or {})
        self._loop: LoopRunner | None = None
        self.store: Any = None
        self.proxy: LLMProxy | None = None
        self.daemon: RolloutDaemon | None = None

    def start(self, backends: Sequence[str]) -> RolloutService:
        """Connect to the store and serve the proxy in front of ``backends`` (vLLM server addresses)."""
        self._loop = LoopHandle(self._given_loop) if self._given_loop is not None else LoopThread()
        self._loop.run(self._start(list(backends)))
        return self

    def run(self, coroutine: Any, timeout: float | None = None) -> Any:
        """Run a coroutine on the service's loop (where its store lives)."""
        assert self._loop is not None, "start() first"
        return self._loop.run(coroutine, timeout)

    async def _start(self, backends: list[str]) -> None:
        if self._given_store is not None:
            self.store = self._given_store
        else:
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
        self.daemon = RolloutDaemon(
            self.store,
            adapter=self.settings.adapter.build(),
            settings=self.settings.rollout,
            rollout_defaults=self.rollout_defaults,
        )
        if self.model is None and backends:
            self.model = await self._served_model()
        where = getattr(self.store, "address", type(self.store).__name__)
        logger.info("agl rollouts: store %s, LLM proxy %s, model %s", where, self.proxy.url, self.model)

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
        resources_id: str | None = None,
        run_id: str = "",
    ) -> RolloutBatch:
        """One rollout phase (see :meth:`RolloutDaemon.rollout`); returns within the step deadline."""
        assert self._loop is not None and self.daemon is not None, "start() first"
        resources = {**self.resources, self.settings.rollout.resource_name: self.resource(sampling_parameters)}
        return self._loop.run(
            self.daemon.rollout(
                tasks,
                resources=resources,
                n=n,
                mode=mode,
                step=step,
                uids=uids,
                resources_id=resources_id,
                run_id=run_id,
            ),
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
        if self.store is not None and self._given_store is None:  # a given store belongs to the Trainer
            await self.store.close()


__all__ = ["RolloutService"]
