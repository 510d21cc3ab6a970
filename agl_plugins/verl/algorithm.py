"""The ``verl`` algorithm object (plugin name ``verl``).

    algorithm = VERL(config={"actor_rollout_ref": {"model": {"path": "Qwen/Qwen2.5-0.5B-Instruct"}}},
                     overrides=["trainer.n_gpus_per_node=2"])
    algorithm.run(train_dataset=[{"question": ...}, ...], val_dataset=[...])

Runners (agl workers running the agent) take the rollouts from the same agl-server
(``agl.store``, or ``$AGL_SERVER_ADDRESS``) and call the LLM through the ``ProxyLLM`` resource
named ``agl.rollout.resource_name``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class VERL:
    """RL training with verl; the rollout phase is done by agl runners.

    :param config: a (partial) verl config with an ``agl`` section, merged over the defaults
        (``agl_plugins/verl/conf/agl_ppo_trainer.yaml``: verl's ``ppo_trainer`` + agl's keys).
    :param overrides: hydra-style overrides applied last (``"trainer.total_epochs=2"``).
    """

    def __init__(self, config: Mapping[str, Any] | None = None, overrides: Sequence[str] = ()) -> None:
        from agl_plugins.verl.config import AglSettings
        from agl_plugins.verl.entrypoint import load_config

        self.config = load_config(overrides, config)
        self.settings = AglSettings.from_mapping(self.config.get("agl"))  # fail early on a bad agl section

    def run(self, train_dataset: Sequence[Any], val_dataset: Sequence[Any] | None = None) -> None:
        """Train on ``train_dataset`` (tasks: the agent's inputs), validating on ``val_dataset``."""
        from agl_plugins.verl.entrypoint import run_training

        run_training(self.config, list(train_dataset), list(val_dataset if val_dataset is not None else train_dataset))


__all__ = ["VERL"]
