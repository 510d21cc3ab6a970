"""Ray for the ``ray`` strategy: the check that it is installed, and the connection to a cluster.

The connection is shared with everything else in the process that uses Ray (verl's worker
groups): when Ray is connected already, the strategy uses that connection and leaves it open;
otherwise it connects (``address``, ``RAY_ADDRESS``, or a new local cluster) and disconnects at
the end, which also ends a local cluster it started.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agl_core.execution.keeper import init_in_keeper_thread
from agl_core.execution.ray_priority import at_driver_priority

logger = logging.getLogger(__name__)

EXTRA = "ray"


class MissingRayError(ImportError):
    """Ray is not installed (the ``ray`` extra)."""


def require_ray() -> Any:
    """The ``ray`` module, or :class:`MissingRayError` saying which extra to install."""
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise MissingRayError(
            f"the ray strategy needs Ray ({exc}); install it with `pip install 'agl[{EXTRA}]'` "
            f"(or `pip install -e '.[{EXTRA}]'` in a checkout), or use strategy 'cs' on one machine"
        ) from exc


@dataclass
class RayConnection:
    """The process's Ray connection as the strategy found or made it.

    :ivar owned: the strategy connected (and disconnects at :meth:`close`); False when Ray was
        connected already (by the caller, or by verl) and stays connected.
    """

    owned: bool
    _release: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        if not self.owned:
            return
        import ray

        try:
            ray.shutdown()
        finally:
            self._release.set()


def connect(address: str | None, init_args: Mapping[str, Any] | None = None) -> RayConnection:
    """Connect to Ray unless connected: ``address`` (``"auto"``, ``"ray://host:10001"``,
    ``"host:6379"``), else ``RAY_ADDRESS``, else a new local cluster; the job's workers run at this
    process's CPU priority (:mod:`agl_core.execution.ray_priority`)."""
    ray = require_ray()
    if ray.is_initialized():
        if address:
            logger.info("Ray is connected already; the ray strategy uses that cluster, not %s", address)
        return RayConnection(owned=False)
    connection = RayConnection(owned=True)
    args = at_driver_priority(init_args or {})  # the runners and the server are the work, not background
    args.setdefault("log_to_driver", True)
    init_in_keeper_thread(lambda: ray.init(address=address, **args), connection._release, "agl-ray-strategy")
    context = ray.get_runtime_context()
    logger.info("Ray connected: gcs %s, namespace %s", context.gcs_address, context.namespace)
    return connection
