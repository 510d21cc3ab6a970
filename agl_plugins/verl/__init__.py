"""The ``verl`` algorithm, as a plugin: RL training (PPO, GRPO, ...) with verl, rollouts by agl runners.

Loading the plugin imports neither verl nor torch: they load when the algorithm is built, so
``agl`` works without the ``verl`` extra installed. Modules:

- :mod:`~agl_plugins.verl.batch`: rollouts' calls to verl's ``DataProto`` (pure functions);
- :mod:`~agl_plugins.verl.daemon`: the rollout phase through the store (enqueue, watch, adapt);
- :mod:`~agl_plugins.verl.config`: the ``agl`` section of the verl config;
- :mod:`~agl_plugins.verl.trainer`: the PPO trainer whose gen phase is the rollout phase;
- :mod:`~agl_plugins.verl.algorithm`: the algorithm object and its entry point.
"""

from __future__ import annotations

from typing import Any

from agl_core.plugins import hookimpl


def _verl_algorithm(**kwargs: Any) -> Any:
    from agl_plugins.verl.algorithm import VERL

    return VERL(**kwargs)


@hookimpl
def agl_algorithms() -> dict[str, Any]:
    return {"verl": _verl_algorithm}
