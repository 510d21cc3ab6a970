"""The ``apo`` algorithm: automatic prompt optimisation with textual gradients and beam search.

    trainer = Trainer(
        algorithm={"type": "apo", "gradient_model": "gpt-4.1-mini", "beam_rounds": 3},
        initial_resources={"prompt_template": PromptTemplate(template="... {question}")},
    )
    result = trainer.fit(agent, train_tasks, val_dataset=val_tasks)
    result.best_prompt, result.seed_score, result.best_score

See :class:`APO` for the parameters, ``prompts/`` for the critique and edit prompts (editable
copies can be given instead), and :func:`load_history` / ``python -m agl_plugins.algorithms.apo
history`` for what a run tried and why its final prompt won.
"""

from __future__ import annotations

from typing import Any

from agl_core.plugins import hookimpl
from agl_plugins.algorithms.apo.algorithm import APO, APOResult, RoundSummary
from agl_plugins.algorithms.apo.candidates import (
    CANDIDATE_RESOURCE,
    CANDIDATE_TYPE,
    Candidate,
    Score,
    format_history,
    lineage,
    load_history,
)
from agl_plugins.algorithms.apo.llm import ChatClient, LLMCallError, LLMStats
from agl_plugins.algorithms.apo.templates import ChatTemplate, TemplateError

__all__ = [
    "APO",
    "CANDIDATE_RESOURCE",
    "CANDIDATE_TYPE",
    "APOResult",
    "Candidate",
    "ChatClient",
    "ChatTemplate",
    "LLMCallError",
    "LLMStats",
    "RoundSummary",
    "Score",
    "TemplateError",
    "format_history",
    "lineage",
    "load_history",
]


@hookimpl
def agl_algorithms() -> dict[str, Any]:
    return {"apo": APO}
