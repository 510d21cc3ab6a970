"""A third-party agl plugin: the ``sample-algo`` algorithm, an ``agl_on_rollout_end`` observer and
the ``sample-relay`` store backend.

The observer appends one line per finished attempt to the file named by ``AGL_SAMPLE_PLUGIN_LOG``,
so a test can see it ran inside the runners (threads or processes).

``agl-server --store sample-relay --store-option upstream=HOST:PORT`` keeps nothing itself: every
store call goes to the upstream agl-server through agl's gRPC client backend, which implements
only the ``StoreBackend`` protocol (none of the embedded store's fast paths), as a store backend
written by a third party would. At debug level it logs each claim it relays
(``sample-relay: DequeueRollout``), so a test can count them.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from agl_core import hookimpl
from agl_core.algorithm import Algorithm, mean_reward, run_rollouts
from agl_core.client.backend import GrpcBackend
from agl_core.client.channel import ChannelConfig


class SampleAlgorithm(Algorithm):
    """Runs the training set once and reports the mean reward, tagged with its own name."""

    def __init__(self, *, tag: str = "sample") -> None:
        super().__init__()
        self.tag = tag

    async def run(self, train_dataset: Any = None, val_dataset: Any = None) -> dict[str, Any]:
        outcomes = await run_rollouts(self.get_store(), train_dataset or [], mode="train")
        return {"algorithm": self.tag, "rollouts": len(outcomes), "mean_reward": mean_reward(outcomes)}


@hookimpl
def agl_algorithms() -> dict[str, Any]:
    return {"sample-algo": SampleAlgorithm}


@hookimpl
def agl_on_rollout_end(rollout: Any, status: Any, worker_id: str) -> None:
    path = os.environ.get("AGL_SAMPLE_PLUGIN_LOG")
    if path:
        with open(path, "a") as log:
            log.write(f"{rollout.rollout_id} {status} {worker_id}\n")


logger = logging.getLogger("agl_sample_plugin")


class RelayBackend(GrpcBackend):
    """agl's gRPC client backend, logging the claims it relays."""

    async def dequeue_rollout(self, request: Any) -> Any:
        logger.debug("sample-relay: DequeueRollout for %s", request.worker_id)
        return await super().dequeue_rollout(request)


def open_relay(path: str, *, upstream: str, **unknown: Any) -> GrpcBackend:
    if unknown:
        raise TypeError(f"the sample-relay store takes the option upstream, not {', '.join(sorted(unknown))}")
    return RelayBackend(ChannelConfig(address=upstream))


@hookimpl
def agl_store_backends() -> dict[str, Any]:
    return {"sample-relay": open_relay}
