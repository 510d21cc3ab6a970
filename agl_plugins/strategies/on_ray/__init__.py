"""The ``ray`` execution strategy, as a plugin: agl-server and runners as Ray actors on a Ray cluster.

Loading the plugin imports nothing of Ray: the strategy is registered by import path and Ray
loads when it runs (building it without Ray installed says to install ``agl[ray]``). Modules:

- :mod:`~agl_plugins.strategies.on_ray.cluster`: the Ray check, connecting or starting a cluster;
- :mod:`~agl_plugins.strategies.on_ray.actors`: the agl-server and runner actors;
- :mod:`~agl_plugins.strategies.on_ray.strategy`: the strategy (placement, supervision, shutdown).
"""

from __future__ import annotations

from typing import Any

from agl_core.plugins import hookimpl


@hookimpl
def agl_execution_strategies() -> dict[str, Any]:
    return {"ray": "agl_plugins.strategies.on_ray.strategy:RayStrategy"}
