"""verl's PPO trainer with its rollout phase done by agl runners.

:class:`AglPPOTrainer` extends verl's ``RayPPOTrainer``: verl builds the workers (FSDP actor,
critic, reference policy, the vLLM replicas and their weight sync), and verl computes log
probabilities, advantages and updates. What changes is where training data comes from: in the
``gen`` phase the tasks of the batch go to agl runners through the store (see
:mod:`agl_plugins.verl.daemon`), their LLM calls go through the LLM proxy in front of verl's
vLLM servers, and the recorded calls become the batch (see :mod:`agl_plugins.verl.batch`).

A step, phase by phase (timings under verl's names in ``timing_s/...``):

- ``gen``: wake the vLLM replicas (verl's checkpoint manager), run the rollout phase, put the
  replicas to sleep, build the ``DataProto``. A step with no usable sample, or with fewer
  finished rollouts than ``agl.rollout.min_success_fraction``, is skipped (``agl/step_skipped``).
- ``reward``: the agents' rewards are the token-level scores (a reward model is not supported:
  agents emit their rewards).
- ``old_log_prob``, ``ref``, ``values``: verl's workers, on the batch padded to their world size.
- ``adv``: verl's KL penalty (if configured) and ``compute_advantage``, or GRPO over rollouts
  (``agl.credit``, see :mod:`agl_plugins.verl.credit`); samples whose prompt was
  too long are dropped after it, then the batch is shuffled and cut to a whole number of PPO
  mini-batches (``ppo_mini_batch_size * rollout.n`` rows; the rest is dropped and counted).
- ``update``: critic and actor updates, checkpoint, weights to the vLLM replicas.

The number of samples varies from step to step (several calls per rollout, lost rollouts), which
verl's own ``fit`` does not allow; that is why this trainer has its own step, built from verl's
methods rather than a copy of its loop.
"""

from __future__ import annotations

import logging
import math
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from verl import DataProto
from verl.protocol import pad_dataproto_to_divisor, unpad_dataproto
from verl.trainer.ppo.core_algos import agg_loss
from verl.trainer.ppo.metric_utils import compute_data_metrics, compute_timing_metrics
from verl.trainer.ppo.ray_trainer import RayPPOTrainer, apply_kl_penalty
from verl.utils.debug import marked_timer
from verl.utils.metric import reduce_metrics

from agl_plugins.verl.batch import AggregationLevel, to_data_proto
from agl_plugins.verl.config import AglSettings, ConfigError
from agl_plugins.verl.credit import check as check_credit
from agl_plugins.verl.credit import compute_advantages
from agl_plugins.verl.daemon import RolloutBatch
from agl_plugins.verl.resume import RunState, cancel_leftovers
from agl_plugins.verl.service import RolloutService

logger = logging.getLogger(__name__)


def tasks_of(batch_dict: Mapping[str, Any]) -> list[Any]:
    """The tasks of a dataloader batch (see :mod:`agl_plugins.verl.dataset`)."""
    tasks = batch_dict.get("task")
    if tasks is None:
        raise ConfigError("the dataloader batch has no 'task' column; use agl_plugins.verl.dataset.TaskDataset")
    return list(tasks)


class AglPPOTrainer(RayPPOTrainer):
    """``RayPPOTrainer`` whose rollouts are run by agl runners (see the module docstring).

    :param agl: the ``agl`` section of the config.
    :param kwargs: verl's ``RayPPOTrainer`` arguments.
    """

    def __init__(
        self,
        *,
        agl: AglSettings,
        rollouts: RolloutService | None = None,
        on_step: Callable[[int, dict[str, Any]], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        **kwargs: Any,
    ) -> None:
        """:param rollouts: the rollout service (default: one opening its own store at ``agl.store``).
        :param on_step: called with the step and its metrics after every step and validation.
        :param should_stop: asked before every step; True ends ``fit`` there."""
        super().__init__(**kwargs)
        self.agl = agl
        self.rollouts: RolloutService = rollouts or RolloutService(agl)
        self.on_step = on_step
        self.should_stop = should_stop or (lambda: False)
        self.history: list[dict[str, Any]] = []
        self.run_state: RunState | None = None
        if self.use_rm:
            raise ConfigError("reward_model.enable is not supported with agl: agents emit their rewards")
        check_credit(self.config.algorithm, agl.credit.level)

    # --- set-up ------------------------------------------------------------------------------------

    def init_workers(self) -> None:
        """verl's Ray workers (``agl.workers: ray``) or the in-process actor (``local``); then the
        rollout service in front of the replicas (or ``agl.backends``)."""
        if self.agl.workers == "local":
            from agl_plugins.verl.local import NoReplicas, build_actor

            self.actor_rollout_wg = build_actor(self.config)
            self.checkpoint_manager = NoReplicas()
            backends: list[str] = []
            if self.config.actor_rollout_ref.rollout.get("name") == "agl_cpu":
                # The CPU rollout engine, in this process: the policy serves its own rollouts.
                from agl_plugins.verl.cpu_engine.local import LocalCpuReplicas

                self.checkpoint_manager = LocalCpuReplicas(self.config, self.actor_rollout_wg)
                backends = self.checkpoint_manager.addresses
        else:
            super().init_workers()
            backends = list(self.llm_server_manager.get_addresses())
        backends = list(self.agl.backends) or backends
        if not backends:
            raise ConfigError(
                "no LLM server answers the rollouts: agl.workers=local starts no rollout replica; "
                "give agl.backends (OpenAI-compatible base URLs) or a rollout engine"
            )
        self.rollouts.start(backends)

    def _lengths(self) -> tuple[int, int]:
        data = self.config.data
        aggregator = self.agl.trace_aggregator
        if AggregationLevel(aggregator.level) is AggregationLevel.TRAJECTORY:
            return (
                aggregator.trajectory_max_prompt_length or data.max_prompt_length,
                aggregator.trajectory_max_response_length or data.max_response_length,
            )
        return data.max_prompt_length, data.max_response_length

    def _sampling(self, validate: bool) -> dict[str, Any]:
        rollout = self.config.actor_rollout_ref.rollout
        source = rollout.val_kwargs if validate else rollout
        return {"temperature": source.temperature, "top_p": source.top_p}

    def _timer(self, name: str, timing: dict[str, float]) -> AbstractContextManager[Any]:
        return marked_timer(name, timing)

    # --- phases ------------------------------------------------------------------------------------

    def gen(self, tasks: Sequence[Any], metrics: dict[str, Any], timing: dict[str, float]) -> DataProto | None:
        """Rollouts by agl runners, as a batch (None: nothing to train on this step)."""
        n = self.config.actor_rollout_ref.rollout.n
        with self._timer("gen", timing):
            outcome: RolloutBatch = self.rollouts.rollout(
                tasks,
                n=n,
                mode="train",
                step=self.global_steps,
                uids=[uuid.uuid4().hex for _ in tasks],
                sampling_parameters=self._sampling(validate=False),
                **self._run_ids(self.global_steps - 1),
            )
            self.checkpoint_manager.sleep_replicas()
        metrics.update(outcome.metrics)
        expected = len(tasks) * n
        if len(outcome.finished) < self.agl.rollout.min_success_fraction * expected:
            logger.warning(
                "step %d: %d of %d rollouts usable; skipping", self.global_steps, len(outcome.finished), expected
            )
            return None
        aggregator = self.agl.trace_aggregator
        samples = outcome.samples(aggregator.level, aggregator.reward_placement)
        if not samples:
            logger.warning("step %d: no usable sample; skipping", self.global_steps)
            return None
        max_prompt, max_response = self._lengths()
        batch, batch_metrics = to_data_proto(
            samples,
            pad_token_id=self.tokenizer.pad_token_id,
            max_prompt_length=max_prompt,
            max_response_length=max_response,
            meta_info={"temperature": self.config.actor_rollout_ref.rollout.temperature},
        )
        metrics.update(batch_metrics)
        return batch

    def reward(self, batch: DataProto, metrics: dict[str, Any], timing: dict[str, float]) -> DataProto:
        """The agents' rewards are already the token-level scores; record what verl needs next."""
        with self._timer("reward", timing):
            batch.meta_info["global_token_num"] = torch.sum(batch.batch["attention_mask"], dim=-1).tolist()
            metrics["agl/score_mean"] = batch.batch["token_level_scores"].sum(-1).mean().item()
        return batch

    def _log_prob_divisor(self) -> int:
        """Rows the log-prob batch must be a multiple of: verl's workers split it evenly over their
        ranks and, without dynamic batch sizes, each rank's share into whole micro-batches. A step
        whose rollouts were partly lost has any number of rows, so it is padded (then unpadded)."""
        world = self.actor_rollout_wg.world_size
        divisor = world
        for section in ("rollout", "ref"):
            cfg = self.config.actor_rollout_ref.get(section) or {}
            if not cfg.get("log_prob_use_dynamic_bsz", False):
                divisor = math.lcm(divisor, world * int(cfg.get("log_prob_micro_batch_size_per_gpu") or 1))
        return divisor

    def log_probs(self, batch: DataProto, metrics: dict[str, Any], timing: dict[str, float]) -> DataProto:
        """Old log probabilities, reference log probabilities and values, by verl's workers."""
        batch, pad = pad_dataproto_to_divisor(batch, self._log_prob_divisor())
        with self._timer("old_log_prob", timing):
            old_log_prob, mfu = self._compute_old_log_prob(batch)
            entropy = agg_loss(
                loss_mat=old_log_prob.batch["entropys"],
                loss_mask=batch.batch["response_mask"],
                loss_agg_mode=self.config.actor_rollout_ref.actor.loss_agg_mode,
            )
            metrics.update({"actor/entropy": entropy.detach().item(), "perf/mfu/actor_infer": mfu})
            old_log_prob.batch.pop("entropys")
            batch = batch.union(old_log_prob)
        if self.use_reference_policy:
            with self._timer("ref", timing):
                batch = batch.union(self._compute_ref_log_prob(batch))
        if self.use_critic:
            with self._timer("values", timing):
                batch = batch.union(self._compute_values(batch))
        # Advantages are computed on the real samples only.
        return unpad_dataproto(batch, pad_size=pad)

    def adv(self, batch: DataProto, metrics: dict[str, Any], timing: dict[str, float]) -> DataProto | None:
        """verl's KL penalty and advantages; then the drop rules (see the module docstring)."""
        algorithm = self.config.algorithm
        with self._timer("adv", timing):
            if algorithm.use_kl_in_reward:
                batch, kl_metrics = apply_kl_penalty(
                    batch, kl_ctrl=self.kl_ctrl_in_reward, kl_penalty=algorithm.kl_penalty
                )
                metrics.update(kl_metrics)
            else:
                batch.batch["token_level_rewards"] = batch.batch["token_level_scores"]
            batch = compute_advantages(
                batch,
                algorithm,
                level=self.agl.credit.level,
                rollout_mean_loss=self.agl.credit.rollout_mean_loss,
                n=self.config.actor_rollout_ref.rollout.n,
            )
        keep = (~batch.batch["is_drop_mask"]).nonzero(as_tuple=True)[0]
        metrics["agl/samples_dropped_prompt_too_long"] = len(batch) - len(keep)
        batch = batch[keep]
        mini_batch = self.config.actor_rollout_ref.actor.ppo_mini_batch_size * self.config.actor_rollout_ref.rollout.n
        usable = len(batch) // mini_batch * mini_batch
        metrics["agl/samples_dropped_remainder"] = len(batch) - usable
        if usable == 0:
            logger.warning(
                "step %d: fewer samples (%d) than one PPO mini-batch (%d); skipping the update",
                self.global_steps,
                len(batch),
                mini_batch,
            )
            return None
        order = list(range(len(batch)))
        random.shuffle(order)  # which samples fall into the remainder is left to chance, not to order
        batch = batch[sorted(order[:usable])]
        batch.meta_info["global_token_num"] = torch.sum(batch.batch["attention_mask"], dim=-1).tolist()
        if self.config.trainer.balance_batch:
            self._balance_batch(batch, metrics=metrics)
        return batch

    def update(self, batch: DataProto, metrics: dict[str, Any], timing: dict[str, float]) -> None:
        """Critic, then actor (after the critic warm-up); then weights to the vLLM replicas."""
        if self.use_critic:
            with self._timer("update_critic", timing):
                critic_output = self._update_critic(batch)
            metrics.update(reduce_metrics(critic_output.meta_info["metrics"]))
        if self.config.trainer.critic_warmup <= self.global_steps:
            with self._timer("update_actor", timing):
                actor_output = self._update_actor(batch)
            metrics.update(reduce_metrics(actor_output.meta_info["metrics"]))
        save_freq = self.config.trainer.save_freq
        if save_freq > 0 and (self._is_last_step() or self.global_steps % save_freq == 0):
            with self._timer("save_checkpoint", timing):
                self._save_checkpoint()

    # --- the loop ----------------------------------------------------------------------------------

    def _is_last_step(self) -> bool:
        return self.global_steps >= self.total_training_steps

    def train_step(self, batch_dict: Mapping[str, Any]) -> dict[str, Any]:
        """One step: gen, reward, log probabilities, adv, update. Returns its metrics."""
        metrics: dict[str, Any] = {"agl/step_skipped": 0}
        timing: dict[str, float] = {}
        batch: DataProto | None = None
        with self._timer("step", timing):
            batch = self.gen(tasks_of(batch_dict), metrics, timing)
            if batch is not None:
                batch = self.reward(batch, metrics, timing)
                batch = self.log_probs(batch, metrics, timing)
                batch = self.adv(batch, metrics, timing)
            if batch is not None:
                self.update(batch, metrics, timing)
            else:
                metrics["agl/step_skipped"] = 1
            with self._timer("update_weights", timing):
                self.checkpoint_manager.update_weights(self.global_steps)
        if batch is not None:
            metrics.update(compute_data_metrics(batch=batch, use_critic=self.use_critic))
            metrics.update(compute_timing_metrics(batch=batch, timing_raw=timing))
        else:
            metrics.update({f"timing_s/{k}": v for k, v in timing.items()})
        return metrics

    def _validate(self, merged: bool = False) -> dict[str, Any]:
        """Validation rollouts by agl runners: reward and length statistics (no tensors)."""
        tasks = [task for batch_dict in self.val_dataloader for task in tasks_of(batch_dict)]
        outcome = self.rollouts.rollout(
            tasks,
            n=self.agl.val_n,
            mode="val",
            step=self.global_steps,
            sampling_parameters=self._sampling(True),
            **self._run_ids(self.global_steps),
        )
        rewards = [f.final_reward for f in outcome.finished]
        lengths = [len(c.response_ids) for f in outcome.finished for c in f.calls]
        metrics = {key.replace("agl/", "val-agl/"): value for key, value in outcome.metrics.items()}
        metrics["val/reward"] = float(np.mean(rewards)) if rewards else 0.0
        metrics["val/mean_response_length"] = float(np.mean(lengths)) if lengths else 0.0
        metrics["val/turn_count"] = float(np.mean([len(f.calls) for f in outcome.finished])) if rewards else 0.0
        return metrics

    def _run_ids(self, policy_version: int) -> dict[str, Any]:
        """The rollout id prefix and resources id of a rollout phase (see :mod:`agl_plugins.verl.resume`)."""
        if self.run_state is None:
            return {}
        return {"run_id": self.run_state.run_id, "resources_id": self.run_state.resources_id(policy_version)}

    def _save_checkpoint(self) -> None:
        super()._save_checkpoint()
        if self.run_state is not None:
            self.run_state.checkpoint_step = self.global_steps
            self.run_state.save(self.config.trainer.default_local_dir)

    def _resume(self) -> None:
        """verl's checkpoint, then agl's state: the run id and the rollouts an interrupted step left."""
        self.global_steps = 0
        trainer = self.config.trainer
        self.run_state = RunState.load_or_create(
            trainer.default_local_dir, resume=trainer.resume_mode != "disable", persist=trainer.save_freq > 0
        )
        self._load_checkpoint()
        if self.run_state.resumed:
            cancelled = self.rollouts.run(cancel_leftovers(self.rollouts.store, self.run_state.run_id))
            logger.info(
                "resumed run %s at step %d; %d unfinished rollouts of the interrupted step cancelled",
                self.run_state.run_id,
                self.global_steps,
                len(cancelled),
            )
            self.resumed = {"step": self.global_steps, "cancelled_rollouts": cancelled}

    def _record(self, metrics: dict[str, Any]) -> None:
        self.history.append(metrics)
        if self.on_step is not None:
            self.on_step(self.global_steps, metrics)

    def fit(self) -> None:
        """Train for ``trainer.total_epochs`` over the dataset (or ``trainer.total_training_steps``),
        resuming from the latest checkpoint (``trainer.resume_mode``)."""
        from verl.utils.tracking import Tracking

        tracking = Tracking(
            project_name=self.config.trainer.project_name,
            experiment_name=self.config.trainer.experiment_name,
            default_backend=self.config.trainer.logger,
            config=OmegaConf.to_container(self.config, resolve=True),
        )
        self.resumed: dict[str, Any] | None = None
        try:
            self._resume()
            self.checkpoint_manager.update_weights(self.global_steps)
            if self.config.trainer.get("val_before_train", True) and self.global_steps == 0:
                metrics = self._validate()
                tracking.log(data=metrics, step=self.global_steps)
                self._record(metrics)
                if self.config.trainer.get("val_only", False):
                    return
            self.global_steps += 1
            start_epoch = (self.global_steps - 1) // max(1, len(self.train_dataloader))
            for epoch in range(start_epoch, self.config.trainer.total_epochs):
                for batch_dict in self.train_dataloader:
                    if self.global_steps > self.total_training_steps or self.should_stop():
                        self.global_steps -= 1  # the last step trained
                        return
                    metrics = self.train_step(batch_dict)
                    test_freq = self.config.trainer.test_freq
                    if test_freq > 0 and (self._is_last_step() or self.global_steps % test_freq == 0):
                        metrics.update(self._validate())
                    metrics.update({"training/global_step": self.global_steps, "training/epoch": epoch})
                    tracking.log(data=metrics, step=self.global_steps)
                    self._record(metrics)
                    if self._is_last_step():
                        return
                    self.global_steps += 1
        finally:
            self.rollouts.close()
            if hasattr(self.checkpoint_manager, "close"):  # the local CPU engine's server
                self.checkpoint_manager.close()
            self._shutdown_dump_executor()


__all__ = ["AglPPOTrainer", "tasks_of"]
