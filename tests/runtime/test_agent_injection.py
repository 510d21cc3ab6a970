"""The rollout decorators inject resources by name and by annotation, and check an agent's signature."""

from __future__ import annotations

from typing import Any

import pytest
from runner_runs import Setup, run_all

from agl_core.litagent import llm_rollout, prompt_rollout, rollout
from agl_core.types import (
    LLM,
    CustomResource,
    PromptTemplate,
    ProxyLLM,
    Rollout,
    RolloutStatus,
)

# --- injection -------------------------------------------------------------------------------------


@llm_rollout
async def llm_agent(task: dict[str, Any], llm: LLM, rollout: Rollout) -> float:
    assert isinstance(llm, LLM) and not isinstance(llm, ProxyLLM)
    expected = f"http://proxy:9000/rollout/{rollout.rollout_id}/attempt/{rollout.attempt.attempt_id}/v1"
    return 1.0 if llm.endpoint == expected and llm.model == "m" else 0.0


@prompt_rollout
def prompt_agent(task: dict[str, Any], prompt_template: PromptTemplate, style: Any) -> float:
    text = prompt_template.format(**task)
    return 1.0 if text == "say hi" and style.value == "terse" else 0.0


@rollout
async def annotated_agent(task: Any, model: LLM, notes: PromptTemplate, resources: dict[str, Any]) -> float:
    return 1.0 if model.model == "m" and notes.template == "say {word}" and len(resources) == 3 else 0.0


@llm_rollout
async def needs_llm(task: Any, llm: LLM) -> float:
    return 1.0


async def test_decorators_inject_resources_by_name_and_annotation(setup: Setup) -> None:
    await setup.store.add_resources(
        {
            "llm": ProxyLLM(endpoint="http://proxy:9000/v1", model="m"),
            "prompt": PromptTemplate(template="say {word}"),
            "style": CustomResource(type="style", value="terse"),
        }
    )
    for agent in (llm_agent, prompt_agent, annotated_agent):
        [result] = await run_all(setup, agent, [{"word": "hi"}])
        assert result.status == RolloutStatus.SUCCEEDED, agent.name
        assert result.attempt.metadata["reward"] == 1.0, agent.name

    await setup.store.add_resources({"prompt": PromptTemplate(template="no llm here")})
    [missing] = await run_all(setup, needs_llm, ["x"])
    assert missing.status == RolloutStatus.FAILED
    assert "no LLM resource" in missing.attempt.metadata["error_message"]


def test_decorators_check_signatures() -> None:
    with pytest.raises(TypeError, match="llm"):
        llm_rollout(lambda task: 1.0)
    with pytest.raises(TypeError, match="prompt_template"):
        prompt_rollout(lambda task, llm: 1.0)
    # The agent is still the function when called directly.
    style = CustomResource(type="style", value="terse")
    assert prompt_agent({"word": "hi"}, PromptTemplate(template="say {word}"), style) == 1.0
