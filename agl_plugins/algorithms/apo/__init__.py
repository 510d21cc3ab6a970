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

import importlib
from typing import TYPE_CHECKING, Any

from agl_core.plugins import hookimpl

if TYPE_CHECKING:
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

# This package is the plugin every agl process imports; APO needs openai (about a second to
# import), so the public names load on first use (PEP 562) rather than here.
_EXPORTS = {
    "APO": "algorithm",
    "APOResult": "algorithm",
    "RoundSummary": "algorithm",
    "CANDIDATE_RESOURCE": "candidates",
    "CANDIDATE_TYPE": "candidates",
    "Candidate": "candidates",
    "Score": "candidates",
    "format_history": "candidates",
    "lineage": "candidates",
    "load_history": "candidates",
    "ChatClient": "llm",
    "LLMCallError": "llm",
    "LLMStats": "llm",
    "ChatTemplate": "templates",
    "TemplateError": "templates",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


@hookimpl
def agl_algorithms() -> dict[str, Any]:
    return {"apo": "agl_plugins.algorithms.apo.algorithm:APO"}
