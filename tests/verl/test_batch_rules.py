"""The rules of the DataProto boundary on hand-made calls: truncation, drops, broken trajectories,
colliding rewards; and the plugin, its config and its trainer against the installed verl."""

from __future__ import annotations

import pytest
import torch

from agl_core.plugins import get_plugin_manager
from agl_plugins.verl.batch import Call, build_tensors, rollout_samples
from agl_plugins.verl.config import AglSettings, ConfigError


def test_long_prompts_keep_their_tail_and_are_marked_for_dropping() -> None:
    [sample] = rollout_samples(
        [Call([1, 2, 3, 4, 5, 6], [7, 8], reward=None)],
        level="transition",
        placement="final",
        final_reward=2.0,
        uid="u",
        rollout_id="r",
    )
    built = build_tensors([sample], pad_token_id=0, max_prompt_length=4, max_response_length=3)
    assert built.prompts_too_long == 1
    assert built.tensors["prompts"].tolist() == [[3, 4, 5, 6]]
    assert built.tensors["is_drop_mask"].tolist() == [True]
    assert built.tensors["token_level_scores"].tolist() == [[0.0, 2.0, 0.0]]
    assert built.tensors["position_ids"].tolist() == [[0, 1, 2, 3, 4, 5, 5]]


def test_cut_responses_move_their_rewards_to_the_last_kept_token() -> None:
    calls = [Call([1, 2], [3, 4, 5], reward=0.5), Call([1, 2, 3, 4, 5, 9], [6, 7, 8], reward=1.5)]
    [sample] = rollout_samples(
        calls, level="trajectory", placement="per_call", final_reward=None, uid="u", rollout_id="r"
    )
    assert sample.response_ids == [3, 4, 5, 9, 6, 7, 8] and sample.response_mask == [1, 1, 1, 0, 1, 1, 1]
    assert sample.rewards == {2: 0.5, 6: 1.5}
    built = build_tensors([sample], pad_token_id=0, max_prompt_length=2, max_response_length=5)
    assert built.responses_cut == 1
    assert built.tensors["responses"].tolist() == [[3, 4, 5, 9, 6]]
    assert built.tensors["response_mask"].tolist() == [[1, 1, 1, 0, 1]]
    # The second call's reward (position 6) was cut off: it lands on the last kept token.
    assert built.tensors["token_level_scores"].tolist() == [[0.0, 0.0, 0.5, 0.0, 1.5]]


def test_a_prompt_that_does_not_continue_the_context_starts_a_new_sample() -> None:
    calls = [
        Call([1, 2], [3], reward=None),
        Call([1, 2, 3, 4], [5], reward=None),  # continues: merged
        Call([9, 9], [6], reward=None),  # a new conversation (e.g. a summariser sub-agent)
        Call([1], [], reward=None),  # no response tokens: no sample
    ]
    first, second = rollout_samples(
        calls, level="trajectory", placement="final", final_reward=1.0, uid="u", rollout_id="r"
    )
    assert (first.prompt_ids, first.response_ids, first.response_mask) == ([1, 2], [3, 4, 5], [1, 0, 1])
    assert (second.prompt_ids, second.response_ids, second.calls) == ([9, 9], [6], [2])
    assert first.rewards == {2: 1.0} and second.rewards == {0: 1.0}  # the final reward on each sample
    transitions = rollout_samples(
        calls, level="transition", placement="per_call", final_reward=1.0, uid="u", rollout_id="r"
    )
    assert [s.rewards for s in transitions] == [{}, {}, {}]  # per_call: calls without a reward get none


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="no samples"):
        build_tensors([], pad_token_id=0, max_prompt_length=4, max_response_length=4)
    with pytest.raises(ValueError, match="is not a valid AggregationLevel"):
        rollout_samples([], level="episode", placement="final", final_reward=None, uid="u", rollout_id="r")


def test_the_agl_section_is_read_strictly() -> None:
    settings = AglSettings.from_mapping(
        {"rollout": {"max_attempts": 3, "timeout_seconds": 60}, "trace_aggregator": {"level": "trajectory"}}
    )
    config = settings.rollout.rollout_config()
    assert (config.max_attempts, config.timeout_seconds, [s.value for s in config.retry_condition]) == (
        3,
        60,
        ["timeout", "unresponsive"],
    )
    with pytest.raises(ConfigError, match=r"agl.rollout has unknown keys \['max_attempt'\]"):
        AglSettings.from_mapping({"rollout": {"max_attempt": 3}})
    with pytest.raises(ConfigError, match="reward_placement is 'everywhere'"):
        AglSettings.from_mapping({"trace_aggregator": {"reward_placement": "everywhere"}})
    with pytest.raises(ConfigError, match=r"agl\.adapter: reward_match 'closest'"):
        AglSettings.from_mapping({"adapter": {"reward_match": "closest"}}).adapter.build()


def test_the_plugin_provides_the_verl_algorithm_and_its_config_composes_over_verls() -> None:
    manager = get_plugin_manager()
    provided = manager.lookup("algorithms", "verl")
    assert provided.plugin == "algorithm-verl" and provided.distribution.startswith("agl ")
    factory = provided.factory
    algorithm = factory(
        config={"agl": {"trace_aggregator": {"reward_placement": "per_call"}}},
        overrides=["actor_rollout_ref.rollout.n=4", "algorithm.adv_estimator=grpo"],
    )
    config = algorithm.config
    # verl's own defaults are there (its ppo_trainer.yaml), with agl's on top and the overrides last.
    assert config.actor_rollout_ref.rollout.n == 4 and config.algorithm.adv_estimator == "grpo"
    assert config.actor_rollout_ref.rollout.mode == "async" and config.trainer.use_v1 is False
    assert config.actor_rollout_ref.actor.ppo_mini_batch_size > 0 and "max_prompt_length" in config.data
    assert algorithm.settings.trace_aggregator.reward_placement == "per_call"
    assert algorithm.settings.rollout.step_timeout == 3600.0
    with pytest.raises(ConfigError, match="unknown keys"):
        factory(config={"agl": {"rollouts": {}}})


def test_the_trainer_builds_on_the_installed_verl() -> None:
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    from agl_plugins.verl.trainer import AglPPOTrainer, tasks_of

    assert issubclass(AglPPOTrainer, RayPPOTrainer)
    # The verl methods the phases call exist under these names in the pinned verl.
    for name in (
        "_compute_old_log_prob",
        "_compute_ref_log_prob",
        "_compute_values",
        "_update_actor",
        "_update_critic",
        "_balance_batch",
        "_save_checkpoint",
        "_load_checkpoint",
        "init_workers",
    ):
        assert callable(getattr(RayPPOTrainer, name)), name
    with pytest.raises(ConfigError, match="no 'task' column"):
        tasks_of({"prompt": torch.zeros(1)})
