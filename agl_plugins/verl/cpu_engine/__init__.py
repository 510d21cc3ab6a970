"""The CPU rollout engine: the policy being trained serves its own rollouts, on the CPU.

Selected with ``actor_rollout_ref.rollout.name=agl_cpu``; the CPU preset (:func:`preset`, the
default for a machine without a GPU) sets it with everything else verl needs there. verl's trainer drives it
through verl's own extension points, as it drives vLLM:

- :mod:`.replica`: ``RolloutReplicaRegistry`` entry ``agl_cpu``; one HTTP server actor per replica;
- :mod:`.rollout`: verl's rollout registry entry ``("agl_cpu", "async")``: the weight sync from the
  actor worker (checkpoint backend ``naive``) and sleep/wake;
- :mod:`.server`, :mod:`.generation`: the OpenAI-compatible server (token ids, log probabilities)
  and the transformers model behind it;
- :mod:`.platform`: a CPU platform for verl (``VERL_PLATFORM=cpu``) and verl's FSDP engine on it.

Importing this module registers all of them (idempotent). verl imports it in every process it
starts through ``VERL_USE_EXTERNAL_MODULES`` (set by the preset for Ray's workers) or through the
``verl.plugins`` entry point of the agl package. It is meant for CI, laptops and debugging; vLLM
stays the GPU engine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ENGINE_NAME = "agl_cpu"
PRESET = Path(__file__).parent / "cpu.yaml"
_ROLLOUT_CLASS = "agl_plugins.verl.cpu_engine.rollout.CpuServerAdapter"


def preset() -> dict[str, Any]:
    """The CPU preset (:data:`PRESET`) as a plain config mapping, for ``VERL(config=preset(), ...)``."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(PRESET))  # type: ignore[return-value]


def _load_replica() -> type:
    from agl_plugins.verl.cpu_engine.replica import CpuReplica

    return CpuReplica


def register() -> None:
    """Register the engine, the CPU platform and the FSDP engine for the CPU with verl (idempotent)."""
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    from agl_plugins.verl.cpu_engine import platform

    # verl's rollout registry is a module-level mapping with no register function: an entry is added.
    _ROLLOUT_REGISTRY[(ENGINE_NAME, "async")] = _ROLLOUT_CLASS
    RolloutReplicaRegistry.register(ENGINE_NAME, _load_replica)
    platform.register()
    if os.environ.get("VERL_PLATFORM", "").strip().lower() == platform.PLATFORM_NAME:
        # Only in processes that run on the CPU platform (agl.workers=local sets up its own).
        platform.register_fsdp_engine()


register()

__all__ = ["ENGINE_NAME", "PRESET", "preset", "register"]
