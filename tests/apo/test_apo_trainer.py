"""APO end to end through the real Trainer: real agl-server and runner processes (``cs``) or
runner threads over an embedded store (``shm``), the example's agent calling a local
OpenAI-compatible server whose answers depend on the prompt, and critique and edit models that
only know what APO sends them."""

from __future__ import annotations

import asyncio
import io
import itertools
import re
from pathlib import Path
from typing import Any

import orders
import pytest
from apo_agents import flaky_extract_order
from support import apo_models
from support.openai_server import OpenAIServer

from agl_core.client import GrpcStore
from agl_core.trainer import Trainer
from agl_core.types import LLM, PromptTemplate, RolloutStatus
from agl_plugins.algorithms.apo import APO, APOResult, format_history, lineage, load_history
from agl_plugins.algorithms.apo.__main__ import main as history_main
from agl_plugins.algorithms.apo.candidates import candidate_of
from agl_plugins.strategies.cs import ClientServerStrategy
from agl_server.process import ServerProcess


def make_apo(llm: OpenAIServer, stream: io.StringIO, **options: Any) -> APO:
    settings: dict[str, Any] = {
        "gradient_model": apo_models.CRITIQUE_MODEL,
        "edit_model": apo_models.EDIT_MODEL,
        "base_url": llm.base_url,
        "api_key": "test",
        "beam_width": 2,
        "branch_factor": 2,
        "beam_rounds": 3,
        "gradient_batch_size": 3,
        "val_batch_size": 8,
        "rollout_batch_timeout": 60,
        "llm_backoff": 0.05,
        "seed": 3,
        "stream": stream,
    }
    settings.update(options)
    return APO(**settings)


def resources(llm: OpenAIServer) -> dict[str, Any]:
    return {
        "prompt_template": PromptTemplate(template=orders.SEED_PROMPT),
        "llm": LLM(endpoint=llm.base_url, model=apo_models.AGENT_MODEL, api_key="test"),
    }


def requests_for(llm: OpenAIServer, model: str) -> list[dict[str, Any]]:
    return [r for r in llm.requests if r.get("model") == model]


def test_apo_improves_the_validation_score_cs(
    apo_llm: OpenAIServer, order_tasks: Any, server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    train, val = order_tasks
    stream = io.StringIO()
    # The critique model is overloaded at first: APO must retry it and go on.
    apo_llm.fail_next(429, "slow down", count=2, model=apo_models.CRITIQUE_MODEL)
    trainer = Trainer(
        algorithm=make_apo(apo_llm, stream),
        strategy=ClientServerStrategy(server_address=server.address),
        n_runners=2,
        runner_capacity=8,
        tracer="otel",
        initial_resources=resources(apo_llm),
        progress=False,
    )
    result: APOResult = trainer.fit(orders.extract_order, train, val_dataset=val)

    # The seed prompt earns nothing; APO's loop finds better prompts, round after round.
    assert result.seed_score == 0.0
    assert result.best_score is not None and result.best_score > result.seed_score
    assert result.best_score >= 0.5
    best_so_far = [r.best_score for r in result.rounds]
    assert len(best_so_far) == 3 and best_so_far == sorted(best_so_far) and best_so_far[0] > 0.0
    assert result.llm.retries == 2 and result.llm.failures == 0
    printed = stream.getvalue()
    print(printed)  # the run's own report, for whoever reads the test log
    assert re.search(r"apo seed prompt: 0\.000", printed)
    for n in (1, 2, 3):
        assert re.search(rf"apo round {n}/3: .*best so far \d\.\d{{3}}", printed)

    # The improvement came from critiques of real rollouts: every critique request showed the
    # agent's replies and the grader's feedback, and each step of the winner's lineage added
    # exactly the instruction its critique quoted.
    critiques = requests_for(apo_llm, apo_models.CRITIQUE_MODEL)
    assert critiques and all("assistant: " in str(r["messages"]) for r in critiques)
    assert all("feedback: scored" in str(r["messages"]) for r in critiques)
    chain = lineage(result.candidates, result.best.candidate_id)
    assert chain[0].candidate_id == result.seed.candidate_id and len(chain) >= 3
    for parent, child in itertools.pairwise(chain):
        assert child.parent_id == parent.candidate_id and child.critique
        [quoted] = re.findall(r"\"([^\"]+)\"", child.critique)
        assert child.template == parent.template + "\n" + quoted
        assert child.gradient is not None and len(child.gradient.rollout_ids) == 3

    async def check_store() -> None:
        store = GrpcStore(server.address)
        try:
            # The best prompt is the latest resources, under the id its history has.
            latest = await store.get_latest_resources()
            assert latest is not None and latest.resources_id == result.best.candidate_id
            assert latest.resources["prompt_template"] == result.best_prompt
            assert latest.resources["llm"] == resources(apo_llm)["llm"]
            record = candidate_of(latest)
            assert record is not None and record.final and record.full_score == result.best_score
            # Every candidate is in the store with its lineage and scores.
            history = await load_history(store)
            assert {c.candidate_id for c in history} == {c.candidate_id for c in result.candidates}
            assert all(c.scores for c in history)
            seed = next(c for c in history if c.round == 0)
            assert {s.split for s in seed.scores} == {"val_full", "train_batch", "val_batch"}
            # The rollouts a critique read ran with the parent's prompt, as training rollouts.
            best = next(c for c in history if c.candidate_id == result.best.candidate_id)
            assert best.gradient is not None
            for rollout_id in best.gradient.rollout_ids:
                rollout = await store.get_rollout(rollout_id)
                assert rollout is not None and rollout.resources_id == best.parent_id
                assert rollout.metadata["apo.purpose"] == "gradient" and rollout.mode == "train"
        finally:
            await store.close()

    asyncio.run(check_store())

    # A person can read the run back from the server.
    capsys.readouterr()
    assert history_main(["history", "--server", server.address]) == 0
    report = capsys.readouterr().out
    assert f"How {result.best.candidate_id} came about" in report
    assert report == format_history(result.candidates) + "\n"


def test_failing_and_stuck_rollouts_score_as_failed_and_the_round_completes(
    apo_llm: OpenAIServer, order_tasks: Any, tmp_path: Path
) -> None:
    train, val = order_tasks
    train = [*train[:4], {**train[4], "explode": True}, {**train[5], "hang": True}]
    val = [*val[:4], {**val[4], "explode": True}, {**val[5], "hang": True}]
    stream = io.StringIO()
    # Every edit call fails for good (500 after its retries) except through the first parent's
    # branches: the round still completes with what it has.
    apo_llm.fail_next(500, "edit model down", count=3, model=apo_models.EDIT_MODEL)
    apo = make_apo(
        apo_llm,
        stream,
        beam_width=1,
        beam_rounds=1,
        gradient_batch_size=6,
        val_batch_size=6,
        # The stuck tasks hold each batch until this deadline, which every other rollout must beat:
        # a batch takes ~1 s on a quiet machine and up to ~7.5 s at load 18 on 2 cores.
        rollout_batch_timeout=15.0,
        llm_max_retries=1,
    )
    strategy = {"type": "cs", "data_dir": tmp_path / "data", "keep_data": True, "graceful_timeout": 0.5}
    result: APOResult = Trainer(
        algorithm=apo,
        strategy=strategy,
        n_runners=1,
        runner_capacity=16,
        tracer="otel",
        initial_resources=resources(apo_llm),
        progress=False,
    ).fit(flaky_extract_order, train, val_dataset=val)

    [summary] = result.rounds
    # Branch 1's edit failed twice (first try and its retry) and was dropped; branch 2's first
    # try failed, its retry went through.
    assert summary.rejected == {"LLM call failed": 1} and summary.new == 1
    assert result.llm.failures == 1 and result.llm.retries == 2
    # The exploding and the stuck task count as failures: the seed scores 0 and the new prompt
    # at most 4 of 6.
    seed_full = result.seed.latest("val_full")
    assert seed_full is not None and (seed_full.score, seed_full.failed, seed_full.n) == (0.0, 2, 6)
    assert result.best is not result.seed
    best_full = result.best.latest("val_full")
    assert best_full is not None and best_full.failed == 2 and 0 < best_full.score <= 4 / 6

    async def statuses() -> dict[str, set[RolloutStatus]]:
        from agl_core.store import LmdbStore

        store = LmdbStore(tmp_path / "data")
        try:
            found: dict[str, set[RolloutStatus]] = {"explode": set(), "hang": set()}
            for rollout in await store.query_rollouts(limit=1000):
                for mark in found:
                    if isinstance(rollout.input, dict) and rollout.input.get(mark):
                        found[mark].add(rollout.status)
            return found
        finally:
            await store.close()

    found = asyncio.run(statuses())
    assert found == {"explode": {RolloutStatus.FAILED}, "hang": {RolloutStatus.CANCELLED}}
    assert "apo round 1/1: 1 new of 2 edits (1 LLM call failed)" in stream.getvalue()


def test_bad_edits_never_reach_the_runners(order_tasks: Any) -> None:
    """Edits that lose or add a placeholder, or break the template, are dropped before any rollout
    runs them; a fenced answer is unwrapped and kept."""
    answers = iter(
        [
            "Extract the order.",  # lost {message}
            "Extract the order for {customer}: {message}",  # a placeholder nobody fills
            "Extract the order: {message",  # not a template
            "```\nExtract the order as product|quantity|date from: {message}\n```",
        ]
    )

    def reply(body: Any, index: int) -> str:
        if body.get("model") == apo_models.EDIT_MODEL:
            return next(answers)
        return apo_models.reply(body, index)

    train, val = order_tasks
    with OpenAIServer(reply=reply) as llm:
        stream = io.StringIO()
        apo = make_apo(llm, stream, beam_width=1, branch_factor=4, beam_rounds=1, llm_concurrency=1)
        result: APOResult = Trainer(
            algorithm=apo,
            strategy="shm",
            n_runners=1,
            runner_capacity=8,
            tracer="otel",
            initial_resources=resources(llm),
            progress=False,
        ).fit(orders.extract_order, train[:6], val_dataset=val[:4])
        agent_prompts = [r["messages"][-1]["content"] for r in requests_for(llm, apo_models.AGENT_MODEL)]
    [summary] = result.rounds
    assert summary.rejected == {"changed the placeholders": 2, "not a valid template": 1}
    [child] = [c for c in result.candidates if c.round == 1]
    assert child.template == "Extract the order as product|quantity|date from: {message}"
    # Every prompt the agent model saw came from the seed or the one valid edit.
    allowed = {t.format(message=task["message"]) for t in (orders.SEED_PROMPT, child.template) for task in train + val}
    assert agent_prompts and set(agent_prompts) <= allowed
    assert any(p.startswith("Extract the order as") for p in agent_prompts)
