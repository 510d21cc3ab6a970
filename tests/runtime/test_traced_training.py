"""The default path end to end: a Trainer whose runners trace the agent with the default tracer
(``otel``, picked by name from the installed plugins), the agent calling an OpenAI-compatible
server through the ``openai`` client and emitting rewards, the algorithm reading them, and the
adapter turning the stored spans into triplets with token ids."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from runtime_agents import llm_quiz_agent
from support.openai_server import EOS, OpenAIServer

from agl_core import LmdbStore
from agl_core.adapter import TracerTraceToTriplet
from agl_core.trainer import Trainer
from agl_core.types import LLM, RolloutStatus

TASKS = [{"question": f"what is {i} plus {i}?", "expect": "plus" if i % 2 == 0 else "minus"} for i in range(12)]


async def _stored(data_dir: Path) -> list[tuple[Any, list[Any]]]:
    store = LmdbStore(data_dir)
    try:
        rollouts = (await store.query_rollouts(limit=100)).items
        return [(r, await store.query_spans(r.rollout_id, "latest")) for r in rollouts]
    finally:
        await store.close()


@pytest.mark.parametrize("strategy", ["shm", "cs"])
def test_default_tracer_records_llm_calls_and_rewards(tmp_path: Path, strategy: str) -> None:
    with OpenAIServer() as llm_server:
        data_dir = tmp_path / "store"
        trainer = Trainer(
            strategy={"type": strategy, "data_dir": data_dir},
            n_runners=2,
            initial_resources={"llm": LLM(endpoint=llm_server.base_url, model=llm_server.model)},
            progress=False,
        )
        result = trainer.fit(llm_quiz_agent, TASKS)
        assert result.train.succeeded == 12 and result.train.mean_reward == 0.5
        stored = asyncio.run(_stored(data_dir))
    assert len(stored) == 12
    adapter = TracerTraceToTriplet()
    for rollout, spans in stored:
        assert rollout.status == RolloutStatus.SUCCEEDED
        triplets = adapter.adapt(spans)
        assert len(triplets) == 1, [s.name for s in spans]
        (triplet,) = triplets
        question = rollout.input["question"]
        messages = [{"role": "user", "content": question}]
        assert triplet.prompt.token_ids == llm_server.prompt_token_ids(messages)
        assert triplet.response.token_ids == [*llm_server.token_ids(f"echo: {question}"), EOS]
        assert triplet.reward == (1.0 if rollout.input["expect"] == "plus" else 0.0)
