"""Running a prompt candidate on a batch of tasks, and what the critique model is shown of it.

A batch is enqueued through the store with the candidate's resources set (``resources_id``) and
followed on the store's event log (:func:`agl_core.algorithm.run_rollouts`). It never holds a
round up: rollouts still unfinished at the batch deadline are cancelled and, like failed
rollouts and rollouts that reported no reward, score ``failure_reward``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agl_core import semconv
from agl_core.algorithm import RolloutOutcome, run_rollouts
from agl_core.errors import NotFoundError
from agl_core.proto.trace_pb2 import Span
from agl_core.store.span_query import MAX_QUERY_ROLLOUTS
from agl_core.types import RolloutMode, RolloutStatus, span_attributes

logger = logging.getLogger(__name__)

SPAN_READS = 8  # rollouts whose spans are read at once, where a store reads them one by one


@dataclass
class Evaluation:
    """A candidate's outcomes on one batch."""

    outcomes: list[RolloutOutcome]
    failure_reward: float

    def reward_of(self, outcome: RolloutOutcome) -> float:
        if outcome.succeeded and outcome.reward is not None:
            return outcome.reward
        return self.failure_reward

    @property
    def score(self) -> float:
        """Mean reward over the batch; a rollout without a reward counts as ``failure_reward``."""
        return sum(self.reward_of(o) for o in self.outcomes) / len(self.outcomes) if self.outcomes else 0.0

    @property
    def failed(self) -> int:
        """Rollouts that earned no reward (failed, cancelled at the deadline, or silent)."""
        return sum(1 for o in self.outcomes if not (o.succeeded and o.reward is not None))

    def summary(self) -> dict[str, Any]:
        return {"score": self.score, "n": len(self.outcomes), "failed": self.failed}


async def evaluate(
    store: Any,
    tasks: Sequence[Any],
    *,
    resources_id: str,
    mode: RolloutMode,
    metadata: Mapping[str, Any],
    timeout: float | None,
    failure_reward: float,
) -> Evaluation:
    """Run ``tasks`` with the resources set ``resources_id`` and collect the outcomes."""
    outcomes = await run_rollouts(
        store,
        tasks,
        mode=mode,
        resources_id=resources_id,
        metadata=metadata,
        timeout=timeout,
        cancel_on_timeout=True,
    )
    cancelled = sum(1 for o in outcomes if o.rollout.status == RolloutStatus.CANCELLED)
    if cancelled:
        logger.warning(
            "apo: %d of %d rollouts with %s did not finish within %ss; cancelled, they score %s",
            cancelled,
            len(outcomes),
            resources_id,
            timeout,
            failure_reward,
        )
    return Evaluation(outcomes, failure_reward)


# --- what the critique model sees --------------------------------------------------------------------


def clip(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters, keeping its start and end."""
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 20)
    head, tail = keep * 2 // 3, keep - keep * 2 // 3
    return f"{text[:head]} [... {len(text) - head - tail} characters cut ...] {text[-tail:]}"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "" if content is None else json.dumps(content, ensure_ascii=False, default=str)


def conversation(records: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The messages of a rollout's LLM calls, each shown once: a call that continues the previous
    call's conversation adds only its new messages."""
    shown: list[dict[str, Any]] = []
    lines: list[dict[str, str]] = []
    for record in records:
        messages = list(record.get("messages") or ())
        if messages[: len(shown)] == shown:
            new = messages[len(shown) :]
        else:
            new = messages
            if lines:
                lines.append({"role": "note", "content": "(a new conversation starts)"})
        for message in new:
            text = _text(message.get("content"))
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                text += f"\n[calls tool {function.get('name')} with {function.get('arguments')}]"
            lines.append({"role": str(message.get("role")), "content": text})
        shown = messages
    return lines


async def spans_of(store: Any, rollout_ids: Sequence[str]) -> dict[str, list[Span]]:
    """The spans of each rollout's latest attempt: one query per 1,000 rollouts where the store has
    ``query_spans_of_rollouts``, rollout by rollout otherwise.

    A rollout cancelled at the batch deadline before any runner took it has no attempt, so no
    spans; some stores answer "latest" of no attempt with NOT_FOUND, others with nothing. A query
    of many that fails so is read again rollout by rollout, each NOT_FOUND counting as no spans."""
    many = getattr(store, "query_spans_of_rollouts", None)
    if many is not None:
        found: dict[str, list[Span]] = {}
        try:
            for start in range(0, len(rollout_ids), MAX_QUERY_ROLLOUTS):
                found.update(await many(rollout_ids[start : start + MAX_QUERY_ROLLOUTS], "latest"))
            return found
        except NotFoundError:
            pass
    reads = asyncio.Semaphore(SPAN_READS)

    async def one(rollout_id: str) -> list[Span]:
        async with reads:
            try:
                spans: list[Span] = await store.query_spans(rollout_id, "latest")
                return spans
            except NotFoundError:
                return []

    return dict(zip(rollout_ids, await asyncio.gather(*(one(r) for r in rollout_ids)), strict=True))


def experiment(
    index: int,
    task: Any,
    outcome: RolloutOutcome,
    spans: list[Span],
    adapter: Any,
    *,
    max_chars: int,
    failure_reward: float,
) -> dict[str, Any]:
    """One rollout as the critique template sees it (see ``prompts/critique.toml``), from the spans
    of its latest attempt."""
    rollout = outcome.rollout
    try:
        lines = conversation(adapter.adapt(spans))
    except Exception:  # a trace the adapter cannot read still leaves the reward and feedback to show
        logger.exception("apo: could not read the LLM calls of rollout %s", rollout.rollout_id)
        lines = []
    feedback: list[str] = []
    errors: list[str] = []
    for span in spans:
        if span.name == semconv.SPAN_MESSAGE:
            body = span_attributes(span).get(semconv.MESSAGE_BODY)
            if isinstance(body, str):
                feedback.append(clip(body, max_chars // 4))
        elif span.name == semconv.SPAN_EXCEPTION:
            attributes = span_attributes(span)
            errors.append(
                f"{attributes.get(semconv.EXCEPTION_TYPE, 'error')}: {attributes.get(semconv.EXCEPTION_MESSAGE, '')}"
            )
    if rollout.status == RolloutStatus.CANCELLED and not errors:
        if rollout.attempt is None and not spans:
            errors.append("no runner took the rollout before the batch deadline; it was cancelled")
        else:
            errors.append("the rollout did not finish before the batch deadline and was cancelled")
    per_message = max(200, max_chars // max(1, len(lines)))
    for line in lines:
        line["content"] = clip(line["content"], per_message)
    reward = outcome.reward if outcome.succeeded else None
    return {
        "index": index,
        "rollout_id": rollout.rollout_id,
        "status": rollout.status.value,
        "reward": reward,
        "score": reward if reward is not None else failure_reward,
        "input": clip(json.dumps(task, ensure_ascii=False, default=str), max_chars // 4),
        "conversation": lines,
        "feedback": feedback,
        "error": clip("; ".join(errors), max_chars // 4) if errors else None,
    }


async def experiments(
    store: Any, tasks: Sequence[Any], evaluation: Evaluation, adapter: Any, *, max_chars: int
) -> list[dict[str, Any]]:
    """Every rollout of a batch (of ``tasks``, in order) as the critique template sees it."""
    spans = await spans_of(store, [outcome.rollout.rollout_id for outcome in evaluation.outcomes])
    pairs = zip(tasks, evaluation.outcomes, strict=True)
    return [
        experiment(
            i,
            task,
            outcome,
            spans.get(outcome.rollout.rollout_id, []),
            adapter,
            max_chars=max_chars,
            failure_reward=evaluation.failure_reward,
        )
        for i, (task, outcome) in enumerate(pairs, 1)
    ]
