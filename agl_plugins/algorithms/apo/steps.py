"""The steps of an APO round: scoring candidates on tasks, and one textual-gradient edit (run the
parent on a batch, have the critique model say what to change, have the edit model change it)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

from agl_core.adapter.messages import TraceToMessages
from agl_core.types.core import RolloutMode
from agl_plugins.algorithms.apo.candidates import Candidate, Gradient, Score
from agl_plugins.algorithms.apo.evaluation import Evaluation, evaluate, experiments
from agl_plugins.algorithms.apo.llm import ChatClient, LLMCallError
from agl_plugins.algorithms.apo.templates import ChatTemplate, template_fields

# The APO logger (the one users configure) whichever module of it logs.
logger = logging.getLogger("agl_plugins.algorithms.apo.algorithm")

_FENCE = re.compile(r"^```[\w-]*\n(.*?)\n?```$", re.DOTALL)
_TAGGED = re.compile(r"<prompt_template>\n?(.*?)\n?</prompt_template>", re.DOTALL)


def clean_edit(text: str) -> str:
    """The prompt an edit model answered with, without a code fence or tags around it."""
    text = text.strip()
    tagged = _TAGGED.search(text)
    if tagged:
        text = tagged.group(1).strip()
    fenced = _FENCE.match(text)
    return fenced.group(1).strip() if fenced else text


class EditSteps:
    """Scoring and editing candidates (a part of :class:`~agl_plugins.algorithms.apo.algorithm.APO`,
    which provides these attributes)."""

    chat: ChatClient | None
    run_id: str
    rollout_batch_timeout: float
    failure_reward: float
    max_experiment_chars: int
    gradient_model: str
    edit_model: str
    diversity_temperature: float | None

    get_adapter: Callable[[], TraceToMessages]

    async def _score(self, store: Any, pool: list[Candidate], tasks: list[Any], split: str, round_: int) -> None:
        """Run every candidate of ``pool`` on ``tasks`` (all at once) and record the scores."""
        evaluations = await asyncio.gather(
            *(self._evaluate(store, c, tasks, RolloutMode.VAL, split, round_) for c in pool)
        )
        for candidate, evaluation in zip(pool, evaluations, strict=True):
            candidate.scores.append(Score(round_, split, evaluation.score, len(tasks), evaluation.failed))

    async def _evaluate(
        self, store: Any, candidate: Candidate, tasks: list[Any], mode: RolloutMode, purpose: str, round_: int
    ) -> Evaluation:
        return await evaluate(
            store,
            tasks,
            resources_id=candidate.candidate_id,
            mode=mode,
            metadata={
                "apo.run": self.run_id,
                "apo.candidate": candidate.candidate_id,
                "apo.round": round_,
                "apo.purpose": purpose,
            },
            timeout=self.rollout_batch_timeout,
            failure_reward=self.failure_reward,
        )

    async def _branch(
        self,
        store: Any,
        parent: Candidate,
        tasks: list[Any],
        critique_template: ChatTemplate,
        edit_template: ChatTemplate,
        fields: set[str],
        round_: int,
    ) -> Candidate | str:
        """One edit of ``parent``: run it on ``tasks``, critique, edit. Returns the new candidate
        (not yet published) or why there is none."""
        assert self.chat is not None
        evaluation = await self._evaluate(store, parent, tasks, RolloutMode.TRAIN, "gradient", round_)
        parent.scores.append(Score(round_, "train_batch", evaluation.score, len(tasks), evaluation.failed))
        shown = await experiments(store, tasks, evaluation, self.get_adapter(), max_chars=self.max_experiment_chars)
        purpose = f"round {round_} critique of {parent.candidate_id}"
        try:
            critique = await self.chat.complete(
                model=self.gradient_model,
                messages=critique_template.render(
                    prompt_template=parent.template, experiments=shown, mean_reward=evaluation.score
                ),
                temperature=self.diversity_temperature,
                purpose=purpose,
            )
            edited = await self.chat.complete(
                model=self.edit_model,
                messages=edit_template.render(
                    prompt_template=parent.template,
                    critique=critique,
                    fields=sorted(fields),
                    engine=parent.engine,
                ),
                temperature=self.diversity_temperature,
                purpose=f"round {round_} edit of {parent.candidate_id}",
            )
        except LLMCallError as exc:
            logger.warning("apo: %s dropped: %s", purpose, exc)
            return "LLM call failed"
        template = clean_edit(edited)
        child = Candidate(
            candidate_id="",
            run_id=parent.run_id,
            round=round_,
            template=template,
            engine=parent.engine,
            resource_name=parent.resource_name,
            parent_id=parent.candidate_id,
            critique=critique,
            gradient=Gradient(
                rollout_ids=[o.rollout.rollout_id for o in evaluation.outcomes],
                parent_score=evaluation.score,
                critique_template=critique_template.name,
                edit_template=edit_template.name,
            ),
        )
        if template == parent.template:
            return "left the prompt unchanged"
        try:
            changed = template_fields(child.prompt) != fields
        except ValueError as exc:
            logger.info("apo: an edit of %s is not a valid template (%s); dropped", parent.candidate_id, exc)
            return "not a valid template"
        if changed:
            logger.info("apo: an edit of %s changed the template's placeholders; dropped", parent.candidate_id)
            return "changed the placeholders"
        return child
