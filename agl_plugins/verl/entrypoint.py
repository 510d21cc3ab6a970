"""Running the verl trainer: config composition, Ray, and the task runner that builds the trainer.

``python -m agl_plugins.verl [hydra overrides]`` trains from ``data.train_files`` / ``data.val_files``
(task files: .jsonl, .json or .parquet); :class:`agl_plugins.verl.algorithm.VERL` does the same
from Python with in-memory datasets.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from agl_core.execution.keeper import init_in_keeper_thread
from agl_core.execution.ray_priority import at_driver_priority

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "conf"
CONFIG_NAME = "agl_ppo_trainer"


def load_config(overrides: Sequence[str] = (), config: Mapping[str, Any] | DictConfig | None = None) -> DictConfig:
    """verl's PPO config with agl's defaults, then ``config`` merged in, then hydra ``overrides``.

    :param overrides: hydra override strings (``trainer.n_gpus_per_node=4``, ``model_engine=megatron``);
        they win over ``config``. Config-group choices (``model_engine=...``) act at composition.
    :param config: a (partial) config as a mapping, merged over the defaults.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        composed = compose(config_name=CONFIG_NAME, overrides=list(overrides))
    if not config:
        return composed
    OmegaConf.set_struct(composed, False)
    merged = OmegaConf.merge(composed, OmegaConf.create(_container(config)))
    # Value overrides (dotted keys) are applied again so that they win over ``config`` too.
    values = [o.lstrip("+") for o in overrides if "." in o.split("=", 1)[0] and not o.startswith("~")]
    return OmegaConf.merge(merged, OmegaConf.from_dotlist(values))  # type: ignore[return-value]


def _container(config: Mapping[str, Any] | DictConfig) -> Any:
    return OmegaConf.to_container(config) if isinstance(config, DictConfig) else dict(config)


def ray_init_kwargs(config: DictConfig) -> dict[str, Any]:
    """The ``ray.init`` arguments verl's config asks for: ``ray_kwargs.ray_init`` with verl's
    runtime environment (its workers' environment variables) merged in, and the workers at this
    process's CPU priority unless the config sets ``RAY_worker_niceness``
    (:mod:`agl_core.execution.ray_priority`).

    Where Ray is connected before verl runs (the ``ray`` strategy connects first), these are what
    the strategy should connect with: ``strategy={"type": "ray", "init_args": VERL(...).ray_init_args()}``.
    """
    from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

    runtime_env = OmegaConf.merge(
        get_ppo_ray_runtime_env(config), config.ray_kwargs.get("ray_init", {}).get("runtime_env", {})
    )
    runtime_env.setdefault("env_vars", {})
    if os.environ.get("AGL_SERVER_ADDRESS"):
        runtime_env["env_vars"]["AGL_SERVER_ADDRESS"] = os.environ["AGL_SERVER_ADDRESS"]
    init = {
        k: v for k, v in OmegaConf.to_container(config.ray_kwargs.get("ray_init", {})).items() if k != "runtime_env"
    }
    return at_driver_priority({"runtime_env": OmegaConf.to_container(runtime_env), **init})


def init_ray(config: DictConfig) -> None:
    """Start Ray (unless it runs already) with verl's runtime environment.

    Already connected (the ``ray`` strategy, or the caller), verl's workers join that cluster:
    one cluster for agl's runners and verl's workers. ``ray.init`` cannot change a connection, so
    the cluster must then have been connected with :func:`ray_init_kwargs`' arguments.
    """
    import ray

    if ray.is_initialized():
        logger.info(
            "Ray is connected already (gcs %s): verl's workers join that cluster",
            ray.get_runtime_context().gcs_address,
        )
        return
    kwargs = ray_init_kwargs(config)
    init_in_keeper_thread(lambda: ray.init(**kwargs))


def build_trainer(
    config: DictConfig,
    train_tasks: Sequence[Any] | None = None,
    val_tasks: Sequence[Any] | None = None,
    **trainer_kwargs: Any,
) -> Any:
    """:class:`~agl_plugins.verl.trainer.AglPPOTrainer` for ``config`` (workers not started yet):
    verl's worker roles and resource pools (``agl.workers: ray``, as verl's ``main_ppo`` task runner
    sets them up) or the in-process actor (``local``).

    :param train_tasks: the training tasks (None: ``data.train_files``).
    :param val_tasks: the validation tasks (None: ``data.val_files``).
    :param trainer_kwargs: passed on (``rollouts``, ``on_step``, ``should_stop``).
    """
    from verl.trainer.main_ppo_v0 import BaseTaskRunner
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config
    from verl.workers.config import HFModelConfig

    from agl_plugins.verl import local
    from agl_plugins.verl.config import AglSettings
    from agl_plugins.verl.dataset import TaskDataset, collate_tasks
    from agl_plugins.verl.trainer import AglPPOTrainer

    OmegaConf.resolve(config)
    settings = AglSettings.from_mapping(config.get("agl"))
    extra: dict[str, Any] = {}
    if settings.workers == "local":
        local.check_config(config)
        role_worker_mapping, pools = local.role_mapping()
    else:
        roles = BaseTaskRunner()
        _, extra["ray_worker_group_cls"] = roles.add_actor_rollout_worker(config)
        roles.add_critic_worker(config)
        roles.add_reward_model_resource_pool(config)
        validate_config(
            config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
        )
        role_worker_mapping, pools = roles.role_worker_mapping, roles.init_resource_pool_mgr(config)
    model: HFModelConfig = omega_conf_to_dataclass(config.actor_rollout_ref.model, dataclass_type=HFModelConfig)
    train = TaskDataset(train_tasks) if train_tasks is not None else TaskDataset.from_file(config.data.train_files)
    val = TaskDataset(val_tasks) if val_tasks is not None else TaskDataset.from_file(config.data.val_files)
    return AglPPOTrainer(
        agl=settings,
        config=config,
        tokenizer=model.tokenizer,
        processor=model.processor,
        role_worker_mapping=role_worker_mapping,
        resource_pool_manager=pools,
        train_dataset=train,
        val_dataset=val,
        collate_fn=collate_tasks,
        **extra,
        **trainer_kwargs,
    )


def run_training(
    config: DictConfig, train_tasks: Sequence[Any] | None = None, val_tasks: Sequence[Any] | None = None
) -> None:
    """Standalone training (no agl Trainer): the store at ``agl.store``, runners started elsewhere.

    With Ray workers the trainer runs in a task runner actor, as verl's ``main_ppo`` does; with
    local workers in this process."""
    from agl_plugins.verl.config import AglSettings

    if AglSettings.from_mapping(config.get("agl")).workers == "local":
        trainer = build_trainer(config, train_tasks, val_tasks)
        trainer.init_workers()
        trainer.fit()
        return
    import ray

    init_ray(config)
    runner = _task_runner_class().remote()
    ray.get(runner.run.remote(config, train_tasks, val_tasks))


def _task_runner_class() -> Any:
    import ray

    @ray.remote(num_cpus=1)
    class AglTaskRunner:
        """Builds and runs :class:`AglPPOTrainer` on a Ray node (verl's task runner pattern)."""

        def run(self, config: DictConfig, train_tasks: Sequence[Any] | None, val_tasks: Sequence[Any] | None) -> None:
            trainer = build_trainer(config, train_tasks, val_tasks)
            trainer.init_workers()
            trainer.fit()

    return AglTaskRunner


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m agl_plugins.verl key=value ...``: train with verl, rollouts by agl runners."""
    import sys

    run_training(load_config(list(sys.argv[1:] if argv is None else argv)))


__all__ = ["CONFIG_DIR", "build_trainer", "init_ray", "load_config", "main", "ray_init_kwargs", "run_training"]
