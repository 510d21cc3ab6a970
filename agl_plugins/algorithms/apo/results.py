"""What an APO run returns: the summary of each round and the run's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agl_core.types.resources import PromptTemplate
from agl_plugins.algorithms.apo.candidates import Candidate
from agl_plugins.algorithms.apo.llm import LLMStats


@dataclass
class RoundSummary:
    """What one round did.

    :ivar proposed: edits asked for (parents x branches).
    :ivar new: candidates that entered the validation (valid, not a repeat).
    :ivar rejected: edits dropped, by reason (critique or edit call failed, placeholders changed,
        unchanged or repeated prompt).
    :ivar beam: the new beam, best first, as (candidate id, validation-batch score).
    :ivar leader_score: the beam leader's score on the whole validation set.
    :ivar best_score: the best whole-validation score so far (the seed's included).
    """

    round: int
    proposed: int
    new: int
    rejected: dict[str, int]
    beam: list[tuple[str, float]]
    leader_id: str
    leader_score: float
    best_id: str
    best_score: float
    seconds: float
    llm: dict[str, Any]


@dataclass
class APOResult:
    """The outcome of an APO run; every candidate is also in the store (see ``load_history``)."""

    run_id: str
    resource_name: str
    best: Candidate
    seed: Candidate
    rounds: list[RoundSummary]
    candidates: list[Candidate]
    llm: LLMStats
    resources_id: str = field(default="")

    @property
    def best_prompt(self) -> PromptTemplate:
        return self.best.prompt

    @property
    def best_score(self) -> float | None:
        return self.best.full_score

    @property
    def seed_score(self) -> float | None:
        return self.seed.full_score
