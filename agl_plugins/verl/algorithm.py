"""The ``verl`` algorithm (plugin name ``verl``): RL training with verl, rollouts by agl runners.

    Trainer(algorithm={"type": "verl", "config": {...}, "overrides": ["trainer.total_training_steps=10"]},
            strategy="cs", n_runners=4).fit(agent, train_tasks, val_dataset=val_tasks)

Run by the Trainer, verl's trainer runs in the Trainer's process (verl's controller is light; Ray
only carries the worker groups): it uses the Trainer's store (agl-server for ``cs``, the embedded
store for ``shm``) on the Trainer's event loop, the runners the strategy started, the Trainer's
``rollout_config`` for the keys ``agl.rollout`` leaves null, its initial resources (published
with the LLM resource at every step), and its progress output (a line per step). ``Trainer.dev``
runs one training step, without validation or checkpoints.

This module imports neither verl nor torch: without the ``verl`` extra, building the algorithm
fails with :class:`MissingExtraError`, which says what to install.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agl_core.algorithm import Algorithm

EXTRA_MODULES = ("numpy", "torch", "omegaconf", "hydra", "ray", "verl")


class MissingExtraError(ImportError):
    """The ``verl`` extra is not installed."""


def require_extra() -> None:
    """Raise :class:`MissingExtraError` unless what the ``verl`` extra installs can be imported."""
    import importlib

    for name in EXTRA_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise MissingExtraError(
                f"the verl algorithm needs the verl extra ({name} is missing: {exc}); "
                "install it with `pip install 'agl[verl]'` (or `pip install -e '.[verl]'` in a checkout)"
            ) from exc


@dataclass
class VerlResult:
    """What a verl run reports.

    :ivar global_step: the last step trained (the checkpoint's when nothing was left to do).
    :ivar history: the metrics of every step and validation, in order (validations before training
        have ``training/global_step`` absent).
    :ivar resumed: ``{"step", "cancelled_rollouts"}`` when the run resumed from a checkpoint.
    """

    global_step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed: dict[str, Any] | None = None

    @property
    def train_steps(self) -> list[dict[str, Any]]:
        return [m for m in self.history if "training/global_step" in m]

    @property
    def validations(self) -> list[dict[str, Any]]:
        return [m for m in self.history if "val/reward" in m]


def step_line(step: int, metrics: Mapping[str, Any]) -> str:
    """One line of a step's main figures, for the progress output."""
    names = [
        ("agl/reward_mean", "reward"),
        ("val/reward", "val reward"),
        ("actor/pg_loss", "pg_loss"),
        ("actor/grad_norm", "grad_norm"),
        ("agl/rollouts_used", "rollouts"),
        ("timing_s/step", "s"),
    ]
    parts = []
    for key, label in names:
        value = metrics.get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{label} {value:.4g}" if label != "s" else f"{value:.1f}s")
    skipped = " (skipped)" if metrics.get("agl/step_skipped") else ""
    kind = f"step {step}" if "training/global_step" in metrics else f"validation at step {step}"
    return f"verl {kind}{skipped}: " + ", ".join(parts)


class VERL(Algorithm):
    """RL training with verl; the rollout phase is done by agl runners.

    :param config: a (partial) verl config with an ``agl`` section, merged over the defaults
        (``agl_plugins/verl/conf/agl_ppo_trainer.yaml``: verl's ``ppo_trainer`` + agl's keys).
    :param overrides: hydra-style overrides applied last (``"trainer.total_epochs=2"``).
    """

    dev_compatible = True

    def __init__(self, config: Mapping[str, Any] | None = None, overrides: Sequence[str] = ()) -> None:
        super().__init__()
        require_extra()
        from agl_plugins.verl.config import AglSettings
        from agl_plugins.verl.entrypoint import load_config

        self.config = load_config(overrides, config)
        self.settings = AglSettings.from_mapping(self.config.get("agl"))  # fail early on a bad agl section
        self._stop = threading.Event()
        self.trainer: Any = None

    def ray_init_args(self) -> dict[str, Any]:
        """The ``ray.init`` arguments this run's config asks for (``ray_kwargs.ray_init`` and verl's
        runtime environment): for the ``ray`` strategy, which connects to Ray before verl runs, so
        that agl's runners and verl's workers share one cluster set up as verl needs it::

            Trainer(algorithm=verl, strategy={"type": "ray", "init_args": verl.ray_init_args()})
        """
        from agl_plugins.verl.entrypoint import ray_init_kwargs

        return ray_init_kwargs(self._config())

    def stop(self) -> None:
        """Ask a running ``fit`` to end before its next step (thread-safe)."""
        self._stop.set()

    async def run(self, train_dataset: Any = None, val_dataset: Any = None) -> VerlResult:
        """Train on ``train_dataset`` (tasks: the agent's inputs), validating on ``val_dataset``
        (default: the training tasks); returns the metrics of every step."""
        from agl_plugins.verl.config import ConfigError
        from agl_plugins.verl.service import RolloutService

        if train_dataset is None:
            raise ValueError("the verl algorithm trains on a dataset; give fit() a train_dataset")
        if self.settings.store:
            raise ConfigError(
                f"agl.store is {self.settings.store!r}, but under agl's Trainer the store is the Trainer's; "
                "leave agl.store null (give Trainer(store=GrpcStore(...)) or the cs strategy's server_address)"
            )
        rollouts = RolloutService(
            self.settings,
            store=self.get_store(),
            loop=asyncio.get_running_loop(),
            rollout_defaults=self.get_rollout_config(),
            resources=self.get_initial_resources(),
        )
        train = list(train_dataset)
        val = list(val_dataset) if val_dataset is not None else train
        config = self._config()
        if self.settings.workers == "ray":
            # Before the trainer's thread starts, holding the loop: with the loop running meanwhile,
            # two of three runs timed out waiting for GCS's port file (GCS wrote no log at all;
            # cause not established). init_ray's own thread outlives the loop and the trainer.
            from agl_plugins.verl.entrypoint import init_ray

            init_ray(config)
        self._stop.clear()
        try:
            return await _in_thread(self._train, config, rollouts, train, val)
        except BaseException:
            self._stop.set()  # cancelled (Ctrl-C, runners gone): the trainer ends before its next step
            raise

    def _config(self) -> Any:
        from omegaconf import OmegaConf

        config = OmegaConf.create(OmegaConf.to_container(self.config))  # run-local: dev tweaks stay here
        if self.is_dev_mode():
            # One step through every phase (gen, reward, log probs, adv, update, weight sync);
            # no validation pass and nothing written to or read from checkpoints.
            for key, value in {
                "trainer.total_training_steps": 1,
                "trainer.val_before_train": False,
                "trainer.test_freq": -1,
                "trainer.save_freq": -1,
                "trainer.resume_mode": "disable",
            }.items():
                OmegaConf.update(config, key, value, force_add=True)
        return config

    def _train(self, config: Any, rollouts: Any, train: list[Any], val: list[Any]) -> VerlResult:
        from agl_plugins.verl.entrypoint import build_trainer

        self.trainer = build_trainer(
            config, train, val, rollouts=rollouts, on_step=self._on_step, should_stop=self._stop.is_set
        )
        try:
            self.trainer.init_workers()
        except BaseException:
            rollouts.close()
            raise
        self.trainer.fit()
        return VerlResult(self.trainer.global_steps, list(self.trainer.history), self.trainer.resumed)

    def _on_step(self, step: int, metrics: dict[str, Any]) -> None:
        self.report(step_line(step, metrics))
        bad = [k for k in ("actor/pg_loss", "actor/grad_norm") if k in metrics and not math.isfinite(metrics[k])]
        if bad:
            self.report(f"verl step {step}: {', '.join(bad)} not finite: {[metrics[k] for k in bad]}")


async def _in_thread(fn: Any, *args: Any) -> Any:
    """Run ``fn`` in a daemon thread (a blocked verl step must not keep the interpreter from exiting,
    as an executor thread would) and wait for it without blocking the loop."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: Any, error: BaseException | None) -> None:
        if not done.done():
            done.set_exception(error) if error is not None else done.set_result(outcome)

    def target() -> None:
        outcome, error = None, None
        try:
            outcome = fn(*args)
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome, error)

    threading.Thread(target=target, name="agl-verl-trainer", daemon=True).start()
    return await done


__all__ = ["VERL", "MissingExtraError", "VerlResult", "require_extra", "step_line"]
