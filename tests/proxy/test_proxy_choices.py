"""n > 1 and logprobs: the proxy keeps every choice's token ids and logprobs, streamed or not, and
passes the logprobs on to the caller."""

from __future__ import annotations

import json

import openai
import pytest
from agl_llm_proxy import LLMProxy
from support.openai_server import OpenAIServer, logprob

from agl_core import semconv
from agl_core.client import GrpcStore
from agl_core.types import span_attributes

QUESTION = [{"role": "user", "content": "name a prime"}]


def _replies(n: int) -> list[str]:
    return [f"echo: name a prime{f' #{i}' if i else ''}" for i in range(n)]


@pytest.mark.parametrize("stream", [False, True])
async def test_every_choice_keeps_its_token_ids_and_logprobs(
    proxy: LLMProxy, grpc_store: GrpcStore, openai_server: OpenAIServer, stream: bool
) -> None:
    rollout = await grpc_store.start_rollout({"q": 1})
    assert rollout.attempt is not None
    base_url = proxy.as_resource("m").get_base_url(rollout.rollout_id, rollout.attempt.attempt_id)
    async with openai.AsyncOpenAI(base_url=base_url, api_key="t", max_retries=0) as client:
        answer = await client.chat.completions.create(model="m", messages=QUESTION, n=3, logprobs=True, stream=stream)
        if stream:
            texts = ["", "", ""]
            caller_logprobs: list[list[float]] = [[], [], []]
            async for chunk in answer:  # type: ignore[union-attr]
                for choice in chunk.choices:
                    texts[choice.index] += choice.delta.content or ""
                    if choice.logprobs and choice.logprobs.content:
                        caller_logprobs[choice.index] += [item.logprob for item in choice.logprobs.content]
        else:
            texts = [c.message.content or "" for c in answer.choices]  # type: ignore[union-attr]
            caller_logprobs = [[i.logprob for i in c.logprobs.content] for c in answer.choices]  # type: ignore[union-attr]
    replies = _replies(3)
    assert texts == replies
    ids = [openai_server.response_token_ids(text) for text in replies]
    expected_logprobs = [[logprob(i) for i in range(len(choice_ids))] for choice_ids in ids]
    assert caller_logprobs == expected_logprobs  # passed on to the caller as the backend sent them

    [span] = await grpc_store.query_spans(rollout.rollout_id)
    attributes = span_attributes(span)
    assert attributes[semconv.LLM_RESPONSE_TOKEN_IDS] == ids[0]
    assert attributes[semconv.LLM_RESPONSE_LOGPROBS] == pytest.approx(expected_logprobs[0])
    for index in range(3):
        assert attributes[f"{semconv.LLM_CHOICE_PREFIX}{index}.response_token_ids"] == ids[index]
        assert attributes[f"{semconv.LLM_CHOICE_PREFIX}{index}.response_logprobs"] == pytest.approx(
            expected_logprobs[index]
        )
    response = json.loads(attributes[semconv.LLM_RESPONSE])
    assert [c["token_ids"] for c in response["choices"]] == ids
    assert [[i["logprob"] for i in c["logprobs"]["content"]] for c in response["choices"]] == expected_logprobs
    assert attributes[semconv.GEN_AI_OUTPUT_TOKENS] == sum(len(i) for i in ids)


@pytest.mark.parametrize("stream", [False, True])
async def test_text_completion_logprobs_are_recorded(
    proxy: LLMProxy, grpc_store: GrpcStore, openai_server: OpenAIServer, stream: bool
) -> None:
    rollout = await grpc_store.start_rollout({"q": 2})
    assert rollout.attempt is not None
    base_url = proxy.as_resource("m").get_base_url(rollout.rollout_id, rollout.attempt.attempt_id)
    async with openai.AsyncOpenAI(base_url=base_url, api_key="t", max_retries=0) as client:
        answer = await client.completions.create(model="m", prompt="two words", logprobs=1, n=2, stream=stream)
        if stream:
            async for _ in answer:  # type: ignore[union-attr]
                pass
    [span] = await grpc_store.query_spans(rollout.rollout_id)
    attributes = span_attributes(span)
    for index, text in enumerate(["echo: two words", "echo: two words #1"]):
        ids = openai_server.response_token_ids(text)
        assert attributes[f"{semconv.LLM_CHOICE_PREFIX}{index}.response_token_ids"] == ids
        assert attributes[f"{semconv.LLM_CHOICE_PREFIX}{index}.response_logprobs"] == pytest.approx(
            [logprob(i) for i in range(len(ids))]
        )
