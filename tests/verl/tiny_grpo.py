"""The verl overrides the CPU runs of the tiny Qwen2 model share (``cpu_train_step.py``,
``trainer_run.py``): GRPO with groups of two, batches of two, short prompts and responses, FSDP2
without remove-padding (sdpa attention on the CPU)."""

from __future__ import annotations


def overrides(model_dir: str) -> list[str]:
    return [
        f"actor_rollout_ref.model.path={model_dir}",
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.model.use_remove_padding=false",
        "actor_rollout_ref.actor.strategy=fsdp2",
        "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.n=2",
        "actor_rollout_ref.actor.optim.lr=1e-3",
        "algorithm.adv_estimator=grpo",
        "data.train_batch_size=2",
        "data.max_prompt_length=32",
        "data.max_response_length=16",
        "trainer.n_gpus_per_node=1",
    ]
