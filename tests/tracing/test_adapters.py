"""The span tree and the triplet/messages adapters on hand-built traces with known answers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agl_core import new_span, semconv
from agl_core.adapter import RewardMatchPolicy, TracerTraceToTriplet, TraceToMessages, TraceTree
from agl_core.proto.trace_pb2 import Span

MS = 1_000_000


class Trace:
    """Builds the spans of one attempt; times in milliseconds."""

    def __init__(self, attempt_id: str = "at-1") -> None:
        self.attempt_id = attempt_id
        self.spans: list[Span] = []
        self._next = 1

    def span(self, name: str, start: float, end: float, parent: Span | bytes | None = None, **attributes: Any) -> Span:
        span_id = self._next.to_bytes(8, "big")
        self._next += 1
        parent_id = parent.span_id if isinstance(parent, Span) else (parent or b"")
        span = new_span(
            name,
            rollout_id="ro-1",
            attempt_id=self.attempt_id,
            span_id=span_id,
            parent_span_id=parent_id,
            trace_id=b"t" * 16,
            start_time_unix_nano=int(start * MS),
            end_time_unix_nano=int(end * MS),
            sequence_id=self._next,
            attributes={k.replace("__", "."): v for k, v in attributes.items()},
        )
        self.spans.append(span)
        return span

    def llm(
        self,
        start: float,
        end: float,
        parent: Span | bytes | None,
        n: int,
        response_id: str | None = None,
        **extra: Any,
    ) -> Span:
        attributes = {
            semconv.GEN_AI_OPERATION: "chat",
            semconv.LLM_PROMPT_TOKEN_IDS: [n, n + 1],
            semconv.LLM_RESPONSE_TOKEN_IDS: [n + 100],
            semconv.LLM_REQUEST: json.dumps(
                {"model": "m", "messages": [{"role": "user", "content": f"q{n}"}], "temperature": 0.7}
            ),
            semconv.LLM_RESPONSE: json.dumps(
                {
                    "choices": [{"message": {"role": "assistant", "content": f"a{n}"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 2, "completion_tokens": 1},
                }
            ),
            **extra,
        }
        if response_id:
            attributes[semconv.GEN_AI_RESPONSE_ID] = response_id
        return self.span("chat m", start, end, parent, **{k.replace(".", "__"): v for k, v in attributes.items()})

    def reward(self, at: float, value: float, parent: Span | None = None, response_id: str | None = None) -> Span:
        attributes: dict[str, Any] = {semconv.REWARD_VALUE: value}
        if response_id:
            attributes[semconv.REWARD_RESPONSE_ID] = response_id
        return self.span(
            semconv.SPAN_REWARD, at, at, parent, **{k.replace(".", "__"): v for k, v in attributes.items()}
        )


def prompts(triplets: list[Any]) -> list[int]:
    return [t.prompt.token_ids[0] for t in triplets]


def test_triplets_carry_token_ids_content_metadata_and_rewards() -> None:
    trace = Trace()
    root = trace.span("agl.rollout", 0, 100)
    trace.llm(1, 10, root, 1, "r1")
    trace.reward(11, 0.5, root)
    trace.llm(20, 30, root, 2, "r2")
    trace.reward(31, 1.0, root)
    first, second = TracerTraceToTriplet().adapt(trace.spans)
    assert (first.prompt.token_ids, first.response.token_ids, first.reward) == ([1, 2], [101], 0.5)
    assert (second.prompt.token_ids, second.response.token_ids, second.reward) == ([2, 3], [102], 1.0)
    assert first.prompt.content == [{"role": "user", "content": "q1"}]
    assert first.response.content == {"role": "assistant", "content": "a1"}
    assert first.metadata["response_id"] == "r1"
    assert first.metadata["request"] == {"model": "m", "temperature": 0.7}
    assert first.metadata["finish_reason"] == "stop"
    assert first.metadata["usage"] == {"prompt_tokens": 2, "completion_tokens": 1}
    assert (first.metadata["rollout_id"], first.metadata["attempt_id"]) == ("ro-1", "at-1")


def _policy_trace() -> Trace:
    trace = Trace()
    root = trace.span("agl.rollout", 0, 100)
    agent = trace.span("agent", 0, 16.5, root, agl__agent__name="solver")
    trace.llm(1, 5, agent, 1, "r1")
    trace.llm(10, 15, agent, 2, "r2")
    trace.reward(16, 0.2, agent)
    trace.reward(18, 0.3, root)
    trace.llm(20, 25, root, 3, "r3")
    trace.reward(90, 1.0, root)
    return trace


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (RewardMatchPolicy.FIRST_AFTER, [0.3, 0.2, 1.0]),
        (RewardMatchPolicy.FIRST_SIBLING, [None, 0.2, 1.0]),
        (RewardMatchPolicy.PER_CALL, [None, 0.2, 1.0]),
        (RewardMatchPolicy.LAST, [None, None, 1.0]),
        (RewardMatchPolicy.BROADCAST_FINAL, [1.0, 1.0, 1.0]),
        (RewardMatchPolicy.NONE, [None, None, None]),
    ],
)
def test_reward_policies(policy: RewardMatchPolicy, expected: list[float | None]) -> None:
    triplets = TracerTraceToTriplet(reward_match=policy).adapt(_policy_trace().spans)
    assert prompts(triplets) == [1, 2, 3]
    assert [t.reward for t in triplets] == expected


def test_linked_rewards_win_over_the_policy() -> None:
    trace = Trace()
    root = trace.span("agl.rollout", 0, 100)
    trace.llm(1, 5, root, 1, "r1")
    trace.llm(10, 15, root, 2, "r2")
    trace.reward(20, 0.9, root, response_id="r1")  # judged later, for the first call
    trace.reward(21, 0.1, root)
    triplets = TracerTraceToTriplet(reward_match="first_after").adapt(trace.spans)
    assert [t.reward for t in triplets] == [0.9, 0.1]


def test_agent_matching_and_judge_calls() -> None:
    trace = Trace()
    root = trace.span("agl.rollout", 0, 100)
    writer = trace.span("writer", 0, 40, root, gen_ai__agent__name="writer")
    critic = trace.span("critic", 40, 80, root, agl__operation="agent")
    judge = trace.span("grade", 80, 95, root, agl__operation="reward")
    trace.llm(1, 5, writer, 1)
    trace.llm(41, 45, critic, 2)
    trace.llm(81, 85, judge, 3)
    assert prompts(TracerTraceToTriplet().adapt(trace.spans)) == [1, 2]
    assert prompts(TracerTraceToTriplet(exclude_llm_call_in_reward=False).adapt(trace.spans)) == [1, 2, 3]
    only_writer = TracerTraceToTriplet(agent_match="^writ").adapt(trace.spans)
    assert prompts(only_writer) == [1] and only_writer[0].metadata["agent_name"] == "writer"
    assert [t.metadata["agent_name"] for t in TracerTraceToTriplet().adapt(trace.spans)] == [
        "writer",
        "critic",
    ]


def test_repair_moves_floating_llm_calls_under_their_agent() -> None:
    trace = Trace()
    root = trace.span("agl.rollout", 0, 100)
    agent = trace.span("planner", 10, 50, root, agl__agent__name="planner")
    trace.llm(20, 30, root, 1)  # lost its context: attached to the root instead of the agent
    trace.llm(60, 70, root, 2)  # after the agent: stays where it is
    assert prompts(TracerTraceToTriplet(agent_match="planner").adapt(trace.spans)) == [1]
    assert prompts(TracerTraceToTriplet(agent_match="planner", repair_hierarchy=False).adapt(trace.spans)) == []
    tree = TraceTree(trace.spans)
    planner = next(n for n in tree.walk() if n.span is agent)
    assert [c.name for c in planner.children] == ["chat m"]


def test_orphans_missing_parents_second_roots_and_clock_skew() -> None:
    trace = Trace()
    root = trace.span("agl.rollout", 0, 100)
    agent = trace.span("agent", 10, 50, root, agl__agent__name="a")
    lost_parent = b"\x00" * 7 + b"\x99"
    trace.llm(12, 20, lost_parent, 1)  # its parent never arrived
    trace.llm(21, 30, lost_parent, 2)  # a sibling of the same missing parent
    # A second root from another process whose clock runs 0.5 ms behind: still inside the agent.
    other = trace.span("remote-tool", 49.6, 50.4, None)
    trace.llm(49.7, 50.3, other, 3)
    tree = TraceTree(trace.spans, clock_skew_ns=MS)
    top = [n for n in tree.root.children]
    assert [n.name for n in top] == ["agl.rollout"]  # everything found a home
    agent_node = next(n for n in tree.walk() if n.span is agent)
    stand_in = next(n for n in agent_node.children if n.synthetic)
    assert stand_in.span_id == lost_parent and [c.span.name for c in stand_in.children] == [
        "chat m",
        "chat m",
    ]
    assert [t.metadata["agent_name"] for t in TracerTraceToTriplet().adapt(trace.spans)] == ["a", "a", "a"]
    # Without tolerance the skewed span does not fit in the agent and lands under the rollout root.
    strict = TracerTraceToTriplet(clock_skew_ns=0).adapt(trace.spans)
    assert [t.metadata["agent_name"] for t in strict] == ["a", "a", None]


def test_wrapper_spans_give_way_and_duplicates_count_once() -> None:
    trace = Trace()
    root = trace.span("agl.rollout", 0, 100)
    # A framework's LLM span (no token ids) wrapping the client's call.
    wrapper = trace.span("llm.invoke", 1, 20, root, gen_ai__operation__name="chat")
    trace.llm(2, 19, wrapper, 1, "r1")
    # The same response recorded again by a proxy, without token ids.
    trace.span("proxy chat", 3, 18, root, gen_ai__operation__name="chat", gen_ai__response__id="r1")
    trace.llm(30, 40, root, 2, "r2")
    triplets = TracerTraceToTriplet().adapt(trace.spans)
    assert prompts(triplets) == [1, 2]
    assert [t.metadata["response_id"] for t in triplets] == ["r1", "r2"]
    assert len(TracerTraceToTriplet(dedupe=False).adapt(trace.spans)) == 3


def test_name_matching_and_skipping_calls_without_token_ids() -> None:
    trace = Trace()
    root = trace.span("agl.rollout", 0, 100)
    trace.llm(1, 5, root, 1)
    trace.span("openai.chat.completion", 10, 15, root, prompt_token_ids=[7, 8], response_token_ids=[9])
    trace.span("openai.chat.completion", 20, 25, root)
    by_name = TracerTraceToTriplet(llm_call_match=r"openai\.chat").adapt(trace.spans)
    assert [t.prompt.token_ids for t in by_name] == [[7, 8], []]
    kept = TracerTraceToTriplet(llm_call_match=r"openai\.chat", skip_without_token_ids=True).adapt(trace.spans)
    assert [t.response.token_ids for t in kept] == [[9]]


def test_attempts_are_kept_apart() -> None:
    first, second = Trace("at-1"), Trace("at-2")
    for trace, n in ((first, 1), (second, 2)):
        root = trace.span("agl.rollout", 0, 100)
        trace.llm(1, 5, root, n)
        trace.reward(6, float(n), root)
    triplets = TracerTraceToTriplet().adapt(first.spans + second.spans)  # same span ids in both
    assert [(t.metadata["attempt_id"], t.reward) for t in triplets] == [("at-1", 1.0), ("at-2", 2.0)]


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="not a policy; use one of: first_after"):
        TracerTraceToTriplet(reward_match="best")


def test_messages_adapter_writes_fine_tuning_records() -> None:
    trace = Trace()
    root = trace.span("agl.rollout", 0, 100)
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]
    request = {
        "model": "m",
        "tools": tools,
        "parallel_tool_calls": False,
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "find x"}],
    }
    response = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "search", "arguments": '{"q":"x"}'},
                        }
                    ],
                }
            }
        ]
    }
    trace.span(
        "chat m",
        1,
        5,
        root,
        gen_ai__operation__name="chat",
        agl__llm__request=json.dumps(request),
        agl__llm__response=json.dumps(response),
    )
    follow_up = {
        "model": "m",
        "messages": [
            *request["messages"],
            response["choices"][0]["message"],
            {"role": "tool", "tool_call_id": "c1", "content": "x=1"},
        ],
    }
    trace.span(
        "chat m",
        6,
        9,
        root,
        gen_ai__operation__name="chat",
        agl__llm__request=json.dumps(follow_up),
        agl__llm__response=json.dumps({"choices": [{"message": {"role": "assistant", "content": "x is 1"}}]}),
    )
    first, second = TraceToMessages().adapt(trace.spans)
    assert first == {
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "find x"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "search", "arguments": '{"q":"x"}'}}
                ],
            },
        ],
        "tools": tools,
        "parallel_tool_calls": False,
    }
    assert second["messages"][-2:] == [
        {"role": "tool", "content": "x=1", "tool_call_id": "c1"},
        {"role": "assistant", "content": "x is 1"},
    ]
    assert "tools" not in second
