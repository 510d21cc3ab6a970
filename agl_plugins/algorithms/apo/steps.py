"""The steps of an APO round: expanding the beam with textual-gradient edits (run the parent on a
batch, have the critique model say what to change, have the edit model change it), and selecting
the next beam by scoring the candidates on validation tasks."""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Callable, Iterator
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


class RoundSteps:
    """Expanding and selecting the beam (a part of :class:`~agl_plugins.algorithms.apo.algorithm.APO`,
    which provides these attributes)."""

    chat: ChatClient | None
    run_id: str
    rollout_batch_timeout: float
    failure_reward: float
    max_experiment_chars: int
    gradient_model: str
    edit_model: str
    diversity_temperature: float | None

    beam_width: int
    branch_factor: int
    rng: random.Random
    critique_templates: list[ChatTemplate]
    edit_templates: list[ChatTemplate]
    _grad_batches: Iterator[list[Any]]

    get_adapter: Callable[[], TraceToMessages]
    _new_id: Callable[[int], str]

    async def _expand(
        self, store: Any, beam: list[Candidate], everyone: list[Candidate], fields: set[str], round_: int
    ) -> tuple[list[Candidate], dict[str, int], int]:
        """``branch_factor`` edits of each parent (the beam, cycled to ``beam_width`` parents), all
        at once. Returns the new candidates (named, not yet published), why the other edits were
        dropped, and how many edits were asked for."""
        parents = [beam[i % len(beam)] for i in range(self.beam_width)]
        jobs = [
            # Batches and templates are drawn here, in order, so a seeded run is reproducible.
            self._branch(
                store,
                parent,
                next(self._grad_batches),
                self.rng.choice(self.critique_templates),
                self.rng.choice(self.edit_templates),
                fields,
                round_,
            )
            for parent in parents
            for _ in range(self.branch_factor)
        ]
        rejected: dict[str, int] = {}
        known = {c.template for c in everyone}
        children: list[Candidate] = []
        for outcome in await asyncio.gather(*jobs):
            if isinstance(outcome, Candidate) and outcome.template in known:
                outcome = "repeats a prompt already tried"
            if isinstance(outcome, str):
                rejected[outcome] = rejected.get(outcome, 0) + 1
                continue
            known.add(outcome.template)
            outcome.candidate_id = self._new_id(round_)
            children.append(outcome)
        return children, rejected, len(jobs)

    async def _select(
        self, store: Any, pool: list[Candidate], batch: list[Any], val: list[Any], round_: int
    ) -> list[Candidate]:
        """Rank ``pool`` on one validation batch, keep the best ``beam_width``, and score the
        leader on the whole validation set. Returns the new beam, best first."""
        await self._score(store, pool, batch, "val_batch", round_)
        # Ties keep the older prompt (the pool lists the beam first): a new one must do better.
        beam = sorted(pool, key=lambda c: -(c.batch_score or 0.0))[: self.beam_width]
        for candidate in pool:
            candidate.in_beam = candidate in beam
        leader = beam[0]
        if len(batch) >= len(val):  # the batch was the whole validation set: its score is the full one
            latest = leader.latest("val_batch")
            assert latest is not None
            leader.scores.append(Score(round_, "val_full", latest.score, latest.n, latest.failed))
        else:
            await self._score(store, [leader], val, "val_full", round_)
        return beam

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
