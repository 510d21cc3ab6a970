"""Spans to training triplets: (prompt, response, reward) per LLM call, with token ids.

:class:`TracerTraceToTriplet` (plugin name ``triplet``) builds the span tree
(:class:`~agl_core.adapter.tree.TraceTree`, hierarchy repaired), finds the LLM calls, keeps those
of the agents it is told to train, drops duplicates, and gives each call a reward by a
:class:`RewardMatchPolicy`. A reward emitted with ``response_id=`` goes to that call under
every policy.

Which spans are LLM calls: by default those whose ``gen_ai.operation.name`` is an LLM operation
(``chat``, ``text_completion``); with ``llm_call_match`` those whose name matches the regex. An
LLM call span with LLM call spans below it (a framework's wrapper around the client call) gives
way to them, and calls with the same ``gen_ai.response.id`` (a span recorded twice, by the
client and by a proxy) count once, keeping the one that has token ids.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from agl_core import semconv
from agl_core.adapter.base import TraceAdapter
from agl_core.adapter.conventions import LlmCall, is_llm_span, read_llm_call
from agl_core.adapter.tree import SpanNode, TraceTree
from agl_core.emitter.reward import get_reward_value
from agl_core.proto.trace_pb2 import Span


@dataclass
class Segment:
    """One side of a triplet.

    :ivar token_ids: the token ids (empty if the server did not return them).
    :ivar content: the prompt messages (chat) or prompt text; the response message or text.
    :ivar logprobs: log probabilities of the response tokens, when the server returned them.
    """

    token_ids: list[int] = field(default_factory=list)
    content: Any = None
    logprobs: list[float] | None = None


@dataclass
class Triplet:
    """One LLM call as training data.

    :ivar prompt: what the model saw.
    :ivar response: what it answered.
    :ivar reward: the reward matched to this call (None if none was).
    :ivar metadata: ``response_id``, ``agent_name``, ``model``, ``finish_reason``, ``usage``,
        ``request`` (the request without its messages), ``tools``, ``rollout_id``, ``attempt_id``,
        ``span_id`` (hex), ``sequence_id``, ``convention`` (which tracing convention the call was
        read from: see :mod:`agl_core.adapter.conventions`).
    """

    prompt: Segment
    response: Segment
    reward: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class RewardMatchPolicy(StrEnum):
    """How rewards find the LLM calls they reward (rewards linked by ``response_id`` aside).

    - ``first_after``: each reward goes to the latest call that ended before it and has no reward yet.
    - ``first_sibling``: as ``first_after``, among calls with the same parent span as the reward.
    - ``per_call``: each call gets the first reward emitted after it ended and before the next call
      began (a step reward); later rewards in the same gap are ignored.
    - ``last``: only the final reward, given to the last call.
    - ``broadcast_final``: the final reward, given to every call.
    - ``none``: only linked rewards.
    """

    FIRST_AFTER = "first_after"
    FIRST_SIBLING = "first_sibling"
    PER_CALL = "per_call"
    LAST = "last"
    BROADCAST_FINAL = "broadcast_final"
    NONE = "none"


# Each node's call is read once (a trace is adapted by several passes: dedupe, triplets, messages).
_CALLS: weakref.WeakKeyDictionary[SpanNode, LlmCall] = weakref.WeakKeyDictionary()


def llm_call(node: SpanNode) -> LlmCall:
    """The LLM call an LLM span records, in OpenAI's shape, whichever convention wrote it."""
    call = _CALLS.get(node)
    if call is None:
        assert node.span is not None
        call = _CALLS[node] = read_llm_call(node.span, node.attributes)
    return call


def _message_key(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    calls = [
        ((c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments"))
        for c in message.get("tool_calls") or ()
        if isinstance(c, dict)
    ]
    return message.get("role"), message.get("content") or "", calls


def _content_key(call: LlmCall) -> str:
    """What a call said and was told, in a form two conventions' records of it share."""
    messages = call.request.get("messages", call.request.get("prompt"))
    prompt = [_message_key(m) for m in messages] if isinstance(messages, list) else messages
    choices = call.response.get("choices") or [{}]
    first = choices[0] if isinstance(choices[0], dict) else {}
    return repr((prompt, _message_key(first.get("message", first.get("text")))))


def _better(call: LlmCall, than: LlmCall) -> bool:
    """Of two records of one call, the one with token ids, else agl's own (the exact request and
    response bodies)."""
    if bool(call.response_token_ids) != bool(than.response_token_ids):
        return bool(call.response_token_ids)
    return call.convention == "agl" and than.convention != "agl"


def _overlap(a: SpanNode, b: SpanNode) -> bool:
    return a.start <= b.end and b.start <= a.end


def llm_call_contents(node: SpanNode) -> tuple[dict[str, Any], dict[str, Any]]:
    """(request, response) bodies of an LLM call span, in OpenAI's shape (see :func:`llm_call`)."""
    call = llm_call(node)
    return call.request, call.response


class TracerTraceToTriplet(TraceAdapter[list[Triplet]]):
    """Spans to :class:`Triplet` s, one per LLM call, in call order.

    :param llm_call_match: regex on span names that marks LLM calls (default: by the
        ``gen_ai.operation.name`` attribute).
    :param agent_match: regex on agent names: keep only calls made inside a matching agent span
        (default: every call).
    :param reward_match: how rewards are matched to calls (a :class:`RewardMatchPolicy` or its value).
    :param exclude_llm_call_in_reward: leave out calls made while computing a reward (inside a span
        with ``agl.operation = reward``: an LLM judge is not the policy being trained).
    :param dedupe: count calls with the same response id once.
    :param repair_hierarchy: repair the span tree (see :class:`~agl_core.adapter.tree.TraceTree`).
    :param clock_skew_ns: how far the clocks of different processes may disagree.
    :param skip_without_token_ids: leave out calls whose prompt or response token ids are missing.
    """

    def __init__(
        self,
        *,
        llm_call_match: str | None = None,
        agent_match: str | None = None,
        reward_match: RewardMatchPolicy | str = RewardMatchPolicy.FIRST_AFTER,
        exclude_llm_call_in_reward: bool = True,
        dedupe: bool = True,
        repair_hierarchy: bool = True,
        clock_skew_ns: int = 1_000_000,
        skip_without_token_ids: bool = False,
    ) -> None:
        self.llm_call_match = re.compile(llm_call_match) if llm_call_match else None
        self.agent_match = re.compile(agent_match) if agent_match else None
        try:
            self.reward_match = RewardMatchPolicy(reward_match)
        except ValueError:
            known = ", ".join(p.value for p in RewardMatchPolicy)
            raise ValueError(f"reward_match {reward_match!r} is not a policy; use one of: {known}") from None
        self.exclude_llm_call_in_reward = exclude_llm_call_in_reward
        self.dedupe = dedupe
        self.repair_hierarchy = repair_hierarchy
        self.clock_skew_ns = clock_skew_ns
        self.skip_without_token_ids = skip_without_token_ids

    # --- finding calls -----------------------------------------------------------------------------

    def is_llm_call(self, node: SpanNode) -> bool:
        if node.synthetic:
            return False
        if self.llm_call_match is not None:
            return self.llm_call_match.search(node.name) is not None
        return is_llm_span(node.attributes)

    def find_llm_calls(self, tree: TraceTree) -> list[tuple[SpanNode, str | None]]:
        """The LLM calls to train on, with the agent each was made in, in call order."""
        found: list[tuple[SpanNode, str | None]] = []

        def visit(node: SpanNode, agent: str | None, in_reward: bool) -> None:
            agent = node.agent_name() or agent
            in_reward = in_reward or node.attributes.get(semconv.OPERATION) == semconv.OPERATION_REWARD
            if self.is_llm_call(node):
                wanted = self.agent_match is None or (agent is not None and self.agent_match.search(agent))
                if wanted and not (in_reward and self.exclude_llm_call_in_reward):
                    found.append((node, agent))
            for child in node.children:
                visit(child, agent, in_reward)

        for top in tree.root.children:
            visit(top, None, False)
        calls = {id(node) for node, _ in found}

        def readable(node: SpanNode) -> bool:
            return llm_call(node).convention != "unknown"

        def gives_way(node: SpanNode) -> bool:
            # A wrapper span around the client's call gives way to the call itself, unless the
            # inner span records no messages (an SDK's own span with only gen_ai.* metadata, under
            # an instrumentation's span that has them): then the inner one gives way.
            mine = readable(node)
            if any(id(d) in calls and (readable(d) or not mine) for d in node.walk() if d is not node):
                return True
            return not mine and any(id(a) in calls and readable(a) for a in node.ancestors())

        found = [(n, a) for n, a in found if not gives_way(n)]
        found.sort(key=lambda item: item[0].order())
        if self.dedupe:
            found = self._dedupe(found)
        return found

    def _dedupe(self, calls: list[tuple[SpanNode, str | None]]) -> list[tuple[SpanNode, str | None]]:
        """One call recorded twice counts once: by the same response id, or (a framework's span and
        the client's, which share no id) by the same messages in and out at overlapping times. The
        copy with token ids is kept, else agl's own."""
        keep: list[tuple[SpanNode, str | None]] = []
        by_id: dict[str, int] = {}
        by_content: dict[str, list[int]] = {}
        for node, agent in calls:
            call = llm_call(node)
            seen = by_id.get(call.response_id) if call.response_id else None
            if seen is None:
                key = _content_key(call)
                seen = next((i for i in by_content.get(key, ()) if _overlap(keep[i][0], node)), None)
            if seen is None:
                if call.response_id:
                    by_id[call.response_id] = len(keep)
                by_content.setdefault(_content_key(call), []).append(len(keep))
                keep.append((node, agent))
            elif _better(call, llm_call(keep[seen][0])):
                keep[seen] = (node, agent)
        return keep

    # --- rewards -----------------------------------------------------------------------------------

    def match_rewards(self, tree: TraceTree, calls: Sequence[SpanNode]) -> dict[int, float]:
        """Reward per call (keyed by ``id(node)``) under this adapter's policy."""
        rewards = [n for n in tree.spans_in_time_order() if n.span is not None and get_reward_value(n.span) is not None]
        assigned: dict[int, float] = {}
        by_response = {n.attributes.get(semconv.GEN_AI_RESPONSE_ID): n for n in calls}
        unlinked = []
        for reward in rewards:
            value = get_reward_value(reward.span)  # type: ignore[arg-type]
            assert value is not None
            target = by_response.get(reward.attributes.get(semconv.REWARD_RESPONSE_ID))
            if target is not None and reward.attributes.get(semconv.REWARD_RESPONSE_ID):
                assigned[id(target)] = value
            else:
                unlinked.append((reward, value))
        policy = self.reward_match
        skew = self.clock_skew_ns
        ordered = sorted(calls, key=SpanNode.order)
        if policy in (RewardMatchPolicy.FIRST_AFTER, RewardMatchPolicy.FIRST_SIBLING):
            for reward, value in unlinked:
                candidates = [
                    c
                    for c in ordered
                    if id(c) not in assigned
                    and c.end <= reward.start + skew
                    and (policy is RewardMatchPolicy.FIRST_AFTER or c.parent is reward.parent)
                ]
                if candidates:
                    assigned[id(max(candidates, key=lambda c: (c.end, c.sequence_id)))] = value
        elif policy is RewardMatchPolicy.PER_CALL:
            for i, call in enumerate(ordered):
                if id(call) in assigned:
                    continue
                next_start = ordered[i + 1].start if i + 1 < len(ordered) else None
                for reward, value in unlinked:
                    if call.end <= reward.start + skew and (next_start is None or reward.start < next_start):
                        assigned[id(call)] = value
                        break
        elif policy in (RewardMatchPolicy.LAST, RewardMatchPolicy.BROADCAST_FINAL) and unlinked and ordered:
            final = unlinked[-1][1]
            targets = ordered[-1:] if policy is RewardMatchPolicy.LAST else ordered
            for call in targets:
                assigned.setdefault(id(call), final)
        return assigned

    # --- triplets ----------------------------------------------------------------------------------

    def to_triplet(self, node: SpanNode, agent: str | None) -> Triplet:
        """The triplet of one LLM call span (reward not set)."""
        call = llm_call(node)
        request, response = call.request, call.response
        choices = response.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        span = node.span
        assert span is not None
        usage = response.get("usage") if isinstance(response.get("usage"), dict) else None
        metadata = {
            "response_id": call.response_id,
            "agent_name": agent,
            "model": call.model,
            "finish_reason": choice.get("finish_reason"),
            "usage": usage,
            "request": {k: v for k, v in request.items() if k not in ("messages", "prompt", "tools")},
            "tools": request.get("tools"),
            "rollout_id": span.rollout_id,
            "attempt_id": span.attempt_id,
            "span_id": span.span_id.hex(),
            "sequence_id": span.sequence_id,
            "convention": call.convention,
        }
        return Triplet(
            prompt=Segment(call.prompt_token_ids, request.get("messages", request.get("prompt"))),
            response=Segment(call.response_token_ids, choice.get("message", choice.get("text")), call.logprobs),
            metadata=metadata,
        )

    def adapt(self, source: Sequence[Span]) -> list[Triplet]:
        tree = TraceTree(source, repair=self.repair_hierarchy, clock_skew_ns=self.clock_skew_ns)
        made = [(node, self.to_triplet(node, agent)) for node, agent in self.find_llm_calls(tree)]
        if self.skip_without_token_ids:
            made = [(n, t) for n, t in made if t.prompt.token_ids and t.response.token_ids]
        rewards = self.match_rewards(tree, [node for node, _ in made])
        for node, triplet in made:
            triplet.reward = rewards.get(id(node))
        return [triplet for _, triplet in made]


__all__ = ["RewardMatchPolicy", "Segment", "TracerTraceToTriplet", "Triplet", "llm_call_contents"]
