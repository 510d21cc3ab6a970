"""``APO``: automatic prompt optimisation by beam search with textual gradients.

Each round, every prompt in the beam is a parent. For each parent and each of ``branch_factor``
branches, APO runs the parent on a fresh training batch, shows the rollouts (the messages the
model exchanged, the agent's feedback, errors and rewards) to a critique model, which writes a
"textual gradient" (what to change and why), and asks an edit model to apply it. The new
candidates and the beam are then run on the same validation batch; the best ``beam_width`` form
the next beam, and the leader is scored on the whole validation set. The best prompt over all
rounds (by whole-validation score, the seed included) is published as the latest resources.

Batches of all branches and all validation runs go to the runners at once; the critique and edit
calls of a branch start as soon as its batch is done.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from agl_core.adapter.messages import TraceToMessages
from agl_core.algorithm import Algorithm
from agl_core.types.resources import PromptTemplate, Resource
from agl_plugins.algorithms.apo import candidates as book
from agl_plugins.algorithms.apo.candidates import Candidate
from agl_plugins.algorithms.apo.llm import ChatClient
from agl_plugins.algorithms.apo.results import APOResult, RoundSummary
from agl_plugins.algorithms.apo.sampling import batches
from agl_plugins.algorithms.apo.steps import RoundSteps
from agl_plugins.algorithms.apo.templates import ChatTemplate, load_templates, template_fields

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4.1-mini"


class APO(RoundSteps, Algorithm):
    """Automatic prompt optimisation: beam search over a prompt template with textual gradients.

    The template to optimise is the ``PromptTemplate`` among the Trainer's ``initial_resources``
    (``prompt_resource`` names it when there are several); the other initial resources go with
    every candidate unchanged. Rewards come from the agent's rollouts; a rollout that fails, is
    cancelled at the batch deadline or reports no reward scores ``failure_reward``.

    The critique and edit models are reached over any OpenAI-compatible endpoint: ``base_url`` and
    ``api_key``, else the ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` environment variables (for an
    endpoint without keys, any key does).

    :param gradient_model: the critique model (default ``$AGL_APO_GRADIENT_MODEL``, else
        ``gpt-4.1-mini``).
    :param edit_model: the model that applies critiques (default ``$AGL_APO_EDIT_MODEL``, else the
        gradient model).
    :param beam_width: prompts kept after each round (and parents of the next).
    :param branch_factor: edits made from each parent in a round.
    :param beam_rounds: rounds.
    :param gradient_batch_size: training tasks a parent runs (and the critique reads) per branch.
    :param val_batch_size: validation tasks each round ranks the candidates on (all of them when it
        is at least the validation set's size).
    :param diversity_temperature: sampling temperature of the critique and edit calls (None: the
        endpoint's default).
    :param rollout_batch_timeout: seconds a batch of rollouts may take; unfinished rollouts are
        then cancelled and score ``failure_reward``.
    :param failure_reward: the score of a rollout that earned no reward.
    :param run_initial_validation: score the seed on the whole validation set first, so the best
        prompt is only replaced by one that really does better (else the first round's leader wins
        by default).
    :param critique_templates: a critique prompt file, or several to pick from at random (TOML with
        Jinja2 messages; see ``prompts/critique.toml``). Default: the one shipped.
    :param edit_templates: likewise for the edit prompt (``prompts/edit.toml``).
    :param prompt_resource: the name of the resource to optimise.
    :param max_experiment_chars: about how much of each rollout the critique model is shown.
    :param llm_timeout: seconds one critique or edit request may take.
    :param llm_max_retries: retries of a failed critique or edit call (timeouts, 408, 409, 429, 5xx).
    :param llm_backoff: the first retry's delay in seconds (doubling, with jitter, up to
        ``llm_max_backoff``; a server's Retry-After is honoured).
    :param llm_concurrency: critique and edit calls in flight at once.
    :param client: an ``openai.AsyncOpenAI`` to use instead of building one (its own retries should
        be off).
    :param seed: seed of the batch shuffles and template picks (None: random).
    :param run_id: names this run's candidates (default: a fresh random id).
    :param verbose: print a line per round (round, candidates, beam, best so far) to ``stream``;
        everything is also logged to ``agl_plugins.algorithms.apo``.
    """

    def __init__(
        self,
        *,
        gradient_model: str | None = None,
        edit_model: str | None = None,
        beam_width: int = 4,
        branch_factor: int = 4,
        beam_rounds: int = 3,
        gradient_batch_size: int = 4,
        val_batch_size: int = 16,
        diversity_temperature: float | None = 1.0,
        rollout_batch_timeout: float = 3600.0,
        failure_reward: float = 0.0,
        run_initial_validation: bool = True,
        critique_templates: str | Path | Sequence[str | Path] | None = None,
        edit_templates: str | Path | Sequence[str | Path] | None = None,
        prompt_resource: str | None = None,
        max_experiment_chars: int = 6000,
        base_url: str | None = None,
        api_key: str | None = None,
        llm_timeout: float = 120.0,
        llm_max_retries: int = 5,
        llm_backoff: float = 1.0,
        llm_max_backoff: float = 60.0,
        llm_concurrency: int = 8,
        client: Any = None,
        seed: int | None = None,
        run_id: str | None = None,
        verbose: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        super().__init__()
        for name, value in (
            ("beam_width", beam_width),
            ("branch_factor", branch_factor),
            ("gradient_batch_size", gradient_batch_size),
            ("val_batch_size", val_batch_size),
        ):
            if value < 1:
                raise ValueError(f"{name} is {value}; it must be at least 1")
        if beam_rounds < 0:
            raise ValueError(f"beam_rounds is {beam_rounds}; use 0 to only score the seed")
        if rollout_batch_timeout <= 0:
            raise ValueError(f"rollout_batch_timeout is {rollout_batch_timeout}; give a positive number of seconds")
        self.gradient_model = gradient_model or os.environ.get("AGL_APO_GRADIENT_MODEL") or DEFAULT_MODEL
        self.edit_model = edit_model or os.environ.get("AGL_APO_EDIT_MODEL") or self.gradient_model
        self.beam_width = beam_width
        self.branch_factor = branch_factor
        self.beam_rounds = beam_rounds
        self.gradient_batch_size = gradient_batch_size
        self.val_batch_size = val_batch_size
        self.diversity_temperature = diversity_temperature
        self.rollout_batch_timeout = rollout_batch_timeout
        self.failure_reward = failure_reward
        self.run_initial_validation = run_initial_validation
        # Templates are read now, so a missing or broken file fails before any rollout runs.
        self.critique_templates: list[ChatTemplate] = load_templates(critique_templates, "critique.toml")
        self.edit_templates: list[ChatTemplate] = load_templates(edit_templates, "edit.toml")
        self.prompt_resource = prompt_resource
        self.max_experiment_chars = max_experiment_chars
        self.base_url = base_url
        self.api_key = api_key
        self.llm_options = {
            "timeout": llm_timeout,
            "max_retries": llm_max_retries,
            "backoff": llm_backoff,
            "max_backoff": llm_max_backoff,
            "concurrency": llm_concurrency,
        }
        self.client = client
        self.rng = random.Random(seed)
        self.run_id_option = run_id
        self.run_id = run_id or ""
        self.verbose = verbose
        self.stream = stream
        self.result: APOResult | None = None
        self.chat: ChatClient | None = None
        self._counter = 0
        self._grad_batches: Iterator[list[Any]] = iter(())

    # --- set-up ------------------------------------------------------------------------------------

    def get_seed_prompt(self) -> tuple[str, PromptTemplate]:
        """The name and value of the prompt template to optimise (from the initial resources)."""
        resources = self.get_initial_resources() or {}
        prompts = {name: r for name, r in resources.items() if isinstance(r, PromptTemplate)}
        if self.prompt_resource is not None:
            if self.prompt_resource not in prompts:
                raise ValueError(
                    f"APO optimises the prompt template {self.prompt_resource!r}, but the initial resources have "
                    f"no prompt template of that name (they have: {', '.join(sorted(resources)) or 'none'})"
                )
            return self.prompt_resource, prompts[self.prompt_resource]
        if len(prompts) == 1:
            return next(iter(prompts.items()))
        if not prompts:
            raise ValueError(
                "APO needs a PromptTemplate to optimise: give it in Trainer(initial_resources={'prompt_template': "
                "PromptTemplate(template=...)})"
            )
        raise ValueError(
            f"the initial resources have several prompt templates ({', '.join(sorted(prompts))}); "
            "name the one to optimise with APO(prompt_resource=...)"
        )

    def get_adapter(self) -> TraceToMessages:
        """The adapter that reads rollouts' LLM calls as messages (a ``TraceToMessages``; the
        Trainer's if it gave one)."""
        if self._adapter is None:
            self._adapter = TraceToMessages()
        if not isinstance(self._adapter, TraceToMessages):
            raise TypeError(
                f"APO reads rollouts as chat messages and needs a TraceToMessages adapter, not "
                f"{type(self._adapter).__name__}; give Trainer(adapter='messages') or leave adapter unset"
            )
        return self._adapter

    def _chat_client(self) -> ChatClient:
        client = self.client
        if client is None:
            import openai

            base_url = self.base_url or os.environ.get("OPENAI_BASE_URL")
            api_key = self.api_key or os.environ.get("OPENAI_API_KEY")
            if not api_key:
                if not base_url:
                    raise ValueError(
                        "APO needs an OpenAI-compatible endpoint for its critique and edit models: set "
                        "OPENAI_API_KEY (and OPENAI_BASE_URL for another endpoint than OpenAI's), or give "
                        "APO(base_url=..., api_key=...)"
                    )
                api_key = "EMPTY"  # a local endpoint without keys still needs the client to send one
            client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)
        return ChatClient(client, rng=random.Random(self.rng.random()), **self.llm_options)  # type: ignore[arg-type]

    @staticmethod
    def _dataset(data: Any, name: str) -> list[Any]:
        if data is None:
            raise ValueError(f"APO needs a {name}: Trainer.fit(agent, train_dataset, val_dataset=...)")
        items = list(data)
        if not items:
            raise ValueError(f"the {name} is empty; APO needs tasks in both datasets")
        return items

    def _say(self, message: str) -> None:
        logger.info(message)
        if self.verbose:
            stream = self.stream or sys.stderr
            stream.write(message + "\n")
            stream.flush()

    def _new_id(self, round_: int) -> str:
        self._counter += 1
        return f"apo-{self.run_id}-r{round_}-{self._counter:03d}"

    # --- the run -----------------------------------------------------------------------------------

    async def run(self, train_dataset: Any = None, val_dataset: Any = None) -> APOResult:
        train = self._dataset(train_dataset, "training dataset")
        val = self._dataset(val_dataset, "validation dataset")
        resource_name, seed_prompt = self.get_seed_prompt()
        try:
            fields = template_fields(seed_prompt)
        except ValueError as exc:
            raise ValueError(f"the seed prompt template {resource_name!r} cannot be parsed: {exc}") from exc
        self.get_adapter()
        self.chat = self._chat_client()
        self.run_id = self.run_id_option or uuid.uuid4().hex[:8]
        self._counter = 0
        try:
            return await self._search(train, val, resource_name, seed_prompt, fields)
        finally:
            if self.client is None:  # the client APO built for this run; a given one stays open
                await self.chat.client.close()

    async def _search(
        self, train: list[Any], val: list[Any], resource_name: str, seed_prompt: PromptTemplate, fields: set[str]
    ) -> APOResult:
        assert self.chat is not None
        store = self.get_store()
        base: dict[str, Resource] = dict(self.get_initial_resources() or {})
        started = time.monotonic()

        seed = Candidate(
            candidate_id=f"apo-{self.run_id}-seed",
            run_id=self.run_id,
            round=0,
            template=seed_prompt.template,
            engine=seed_prompt.engine.value,
            resource_name=resource_name,
            in_beam=True,
        )
        await book.publish(store, seed, base)
        everyone = [seed]
        self._say(
            f"apo run {self.run_id}: {self.beam_rounds} rounds, beam {self.beam_width} x {self.branch_factor} "
            f"branches, {len(train)} training and {len(val)} validation tasks; critique {self.gradient_model}, "
            f"edit {self.edit_model}"
        )
        best = seed
        if self.run_initial_validation:
            await self._score(store, [seed], val, "val_full", 0)
            await book.update(store, seed, base)
            self._say(f"apo seed prompt: {seed.full_score:.3f} on the whole validation set")
        self._grad_batches = batches(train, self.gradient_batch_size, self.rng)
        val_batches = batches(val, self.val_batch_size, self.rng)
        beam = [seed]
        rounds: list[RoundSummary] = []
        for round_ in range(1, self.beam_rounds + 1):
            round_started = time.monotonic()
            retries_before = self.chat.stats.retries
            children, rejected, proposed = await self._expand(store, beam, everyone, fields, round_)
            for child in children:
                await book.publish(store, child, base)
            everyone += children
            pool = beam + children
            beam = await self._select(store, pool, next(val_batches), val, round_)
            for candidate in pool:
                await book.update(store, candidate, base)
            leader = beam[0]
            assert leader.full_score is not None
            if best.full_score is None or leader.full_score > best.full_score:
                best = leader
            assert best.full_score is not None
            summary = RoundSummary(
                round=round_,
                proposed=proposed,
                new=len(children),
                rejected=rejected,
                beam=[(c.candidate_id, c.batch_score or 0.0) for c in beam],
                leader_id=leader.candidate_id,
                leader_score=leader.full_score,
                best_id=best.candidate_id,
                best_score=best.full_score,
                seconds=time.monotonic() - round_started,
                llm=self.chat.stats.as_dict(),
            )
            rounds.append(summary)
            self._report(summary, self.chat.stats.retries - retries_before)

        best.final = True
        # Re-publishing the winner's set makes it the latest resources, under the id its history has.
        update = await book.update(store, best, base)
        self._say(
            f"apo done in {time.monotonic() - started:.1f}s: best {best.candidate_id} "
            f"{_fmt(best.full_score)} (seed {_fmt(seed.full_score)}), published as the latest resources; "
            f"{len(everyone)} candidates, {self.chat.stats.calls} LLM calls, {self.chat.stats.retries} retried, "
            f"{self.chat.stats.failures} failed"
        )
        self.result = APOResult(
            run_id=self.run_id,
            resource_name=resource_name,
            best=best,
            seed=seed,
            rounds=rounds,
            candidates=everyone,
            llm=self.chat.stats,
            resources_id=update.resources_id,
        )
        return self.result

    def get_best_prompt(self) -> PromptTemplate:
        """The best prompt of the last run."""
        if self.result is None:
            raise RuntimeError("APO has not run yet; the best prompt is known after Trainer.fit()")
        return self.result.best_prompt

    def _report(self, summary: RoundSummary, retries: int) -> None:
        rejected = ", ".join(f"{n} {why}" for why, n in summary.rejected.items())
        beam = ", ".join(f"{score:.3f}" for _, score in summary.beam)
        self._say(
            f"apo round {summary.round}/{self.beam_rounds}: {summary.new} new of {summary.proposed} edits"
            + (f" ({rejected})" if rejected else "")
            + f"; beam [{beam}]; leader {summary.leader_id} {summary.leader_score:.3f} on the validation set; "
            f"best so far {summary.best_score:.3f} ({summary.best_id})"
            + (f"; {retries} LLM calls retried" if retries else "")
            + f"; {summary.seconds:.1f}s"
        )


def _fmt(score: float | None) -> str:
    return f"{score:.3f}" if score is not None else "not scored"
