"""The ``verl`` algorithm, as a plugin: RL training (PPO, GRPO, ...) with verl, rollouts by agl runners.

Loading the plugin imports neither verl nor torch: they load when the algorithm is built, so
``agl`` works without the ``verl`` extra installed (building the algorithm then fails with a
message saying to install ``agl[verl]``). Modules:

- :mod:`~agl_plugins.verl.batch`: rollouts' calls to verl's ``DataProto`` (pure functions);
- :mod:`~agl_plugins.verl.daemon`: the rollout phase through the store (enqueue, watch, adapt);
- :mod:`~agl_plugins.verl.config`: the ``agl`` section of the verl config;
- :mod:`~agl_plugins.verl.trainer`: the PPO trainer whose gen phase is the rollout phase;
- :mod:`~agl_plugins.verl.algorithm`: the algorithm object the Trainer runs;
- :mod:`~agl_plugins.verl.entrypoint`: config composition, building the trainer, standalone runs;
- :mod:`~agl_plugins.verl.local`: ``agl.workers: local``, the actor in-process (CPU);
- :mod:`~agl_plugins.verl.resume`: agl's state beside verl's checkpoints.
"""

from __future__ import annotations

from typing import Any

from agl_core.plugins import hookimpl


@hookimpl
def agl_algorithms() -> dict[str, Any]:
    # A path, imported at lookup only (see agl_core.plugins): verl itself loads when VERL is built.
    return {"verl": "agl_plugins.verl.algorithm:VERL"}
