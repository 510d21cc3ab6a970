"""``agl.workers: local``: verl's actor in this process, without Ray.

verl's trainer normally drives Ray worker groups (an FSDP or Megatron actor per GPU, vLLM
replicas). With ``local`` workers the actor is one verl ``TrainingWorker`` (FSDP2, world size 1)
in the trainer's own process, configured as verl's ``ActorRolloutRefWorker`` configures it, on
CUDA when there is a GPU and on the CPU otherwise. It is for CI, laptops and debugging.

verl 0.9.1 registers its engines for cuda/npu only; on a machine without a GPU,
:func:`use_cpu_for_verl` adds a CPU platform through verl's platform registry and registers the
FSDP engine for "cpu" through its engine registry. It changes process-wide state (the platform,
a single-process torch.distributed group), as verl's own workers do in theirs.

The actor only: GRPO-style training without a critic and without a reference policy (no KL
loss, no KL in the reward). The rollouts' LLM calls go to ``agl.backends`` (OpenAI-compatible
servers) unless a rollout engine provides replicas.
"""

from __future__ import annotations

import os
import socket
import types
from functools import partial
from typing import Any

import torch

from agl_plugins.verl.config import ConfigError


def use_cpu_for_verl() -> None:
    """A CPU platform for verl and its FSDP engine registered for it (idempotent)."""
    from verl.plugin.platform import platform_manager
    from verl.plugin.platform.platform_cuda import PlatformCUDA
    from verl.workers.engine import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    class CpuDeviceModule(types.ModuleType):
        """What verl asks of ``torch.cuda``, answered for the CPU."""

        def __getattr__(self, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            answers: dict[str, Any] = {
                "get_device_name": "CPU",
                "device_count": 1,
                "is_available": True,
                "mem_get_info": (16 << 30, 16 << 30),
                "current_device": "cpu",
            }
            if name in ("manual_seed", "manual_seed_all"):
                return torch.manual_seed
            value = answers.get(name, 0 if "memory" in name else None)
            return lambda *args, **kwargs: value

    device_module = CpuDeviceModule("cpu_device")

    class PlatformCPU(PlatformCUDA):
        @property
        def device_name(self) -> str:
            return "cpu"

        @property
        def device_module(self) -> types.ModuleType:
            return device_module

        def is_available(self) -> bool:
            return True

        def current_device(self) -> Any:
            return "cpu"

        def device_count(self) -> int:
            return 1

        def set_device(self, device_index: int) -> None:
            pass

        def synchronize(self, device_index: int | None = None) -> None:
            pass

        def empty_cache(self) -> None:
            pass

        def communication_backend_name(self) -> str:
            return "gloo"

        def get_device_capability(self, device_index: int = 0) -> tuple[None, None]:
            return None, None

    platform_manager.set_platform(PlatformCPU())
    EngineRegistry.register(model_type="language_model", backend=["fsdp", "fsdp2"], device=["cpu"])(
        FSDPEngineWithLMHead
    )


def init_process_group() -> None:
    """A single-process torch.distributed group (what verl's worker joins), unless one exists."""
    if torch.distributed.is_initialized():
        return
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(sock.getsockname()[1])
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
        os.environ.setdefault(key, value)
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend, rank=0, world_size=1)


class LocalActor:
    """The actor worker group's calls verl's trainer makes, on an in-process ``TrainingWorker``."""

    world_size = 1
    _dispatch_info = {"actor": [0]}

    def __init__(self, worker: Any) -> None:
        self.worker = worker

    def compute_log_prob(self, data: Any) -> Any:
        return self.worker.infer_batch(data)

    def update_actor(self, data: Any) -> Any:
        return self.worker.train_mini_batch(data=data)

    def save_checkpoint(
        self, local_path: str, hdfs_path: str | None = None, global_step: int = 0, **kwargs: Any
    ) -> Any:
        return self.worker.save_checkpoint(local_path, hdfs_path, global_step, kwargs.get("max_ckpt_to_keep"))

    def load_checkpoint(self, local_path: str, hdfs_path: str | None = None, del_local_after_load: bool = False) -> Any:
        return self.worker.load_checkpoint(local_path, hdfs_path, del_local_after_load)

    @property
    def module(self) -> torch.nn.Module:
        """The actor's model (to read or copy its weights)."""
        return self.worker.engine.module  # type: ignore[no-any-return]


class NoReplicas:
    """verl's checkpoint manager when no rollout replica serves the policy: counts what a step asks
    (put the replicas to sleep, sync weights) so that tests can check the order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def sleep_replicas(self) -> None:
        self.calls.append("sleep_replicas")

    def update_weights(self, global_steps: int) -> None:
        self.calls.append(f"update_weights({global_steps})")


def check_config(config: Any) -> None:
    """Refuse what the local actor cannot do (a critic, a reference policy)."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy

    if need_critic(config):
        raise ConfigError(
            f"agl.workers=local runs the actor only; algorithm.adv_estimator={config.algorithm.adv_estimator} "
            "needs a critic (use grpo, rloo, ... or agl.workers=ray)"
        )
    if need_reference_policy(config):
        raise ConfigError(
            "agl.workers=local runs the actor only; turn the reference policy off "
            "(actor_rollout_ref.actor.use_kl_loss=false, algorithm.use_kl_in_reward=false) or use agl.workers=ray"
        )


def role_mapping() -> tuple[dict[Any, Any], Any]:
    """What ``RayPPOTrainer.__init__`` wants (role mapping, resource pools); nothing of it starts Ray."""
    from verl.single_controller.ray import ResourcePoolManager
    from verl.trainer.ppo.utils import Role
    from verl.workers.engine_workers import TrainingWorker

    pools = ResourcePoolManager(resource_pool_spec={"global_pool": [1]}, mapping={Role.ActorRollout: "global_pool"})
    return {Role.ActorRollout: TrainingWorker}, pools


def build_actor(config: Any) -> LocalActor:
    """verl's ``TrainingWorker`` for the actor, as ``ActorRolloutRefWorker`` configures it."""
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import ActorConfig, HFModelConfig, TrainingWorkerConfig
    from verl.workers.engine_workers import TrainingWorker
    from verl.workers.utils.losses import ppo_loss

    check_config(config)
    if not torch.cuda.is_available():
        use_cpu_for_verl()
    init_process_group()
    ar = config.actor_rollout_ref
    model_config: HFModelConfig = omega_conf_to_dataclass(ar.model, dataclass_type=HFModelConfig)
    actor_config: ActorConfig = omega_conf_to_dataclass(ar.actor)
    actor_config.model_config = model_config
    training = TrainingWorkerConfig(
        model_type="language_model",
        model_config=model_config,
        engine_config=actor_config.engine,
        optimizer_config=actor_config.optim,
        checkpoint_config=actor_config.checkpoint,
    )
    engine = training.engine_config
    engine.use_dynamic_bsz = ar.actor.get("use_dynamic_bsz", False)
    engine.infer_micro_batch_size_per_gpu = ar.rollout.log_prob_micro_batch_size_per_gpu
    engine.micro_batch_size_per_gpu = ar.actor.ppo_micro_batch_size_per_gpu
    engine.use_remove_padding = ar.model.get("use_remove_padding", False)
    worker = TrainingWorker(config=training)
    worker.reset()
    worker.set_loss_fn(partial(ppo_loss, config=actor_config))
    return LocalActor(worker)


__all__ = [
    "LocalActor",
    "NoReplicas",
    "build_actor",
    "check_config",
    "init_process_group",
    "role_mapping",
    "use_cpu_for_verl",
]
