"""APO's critique/edit calls against a local OpenAI-compatible server that fails on purpose:
retries with back-off on 429/5xx/timeouts, none on errors a retry cannot fix, a deadline on
every call. The waits are recorded, not slept, so the tests see the back-off without taking it."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import openai
import pytest
from support.openai_server import OpenAIServer

from agl_plugins.algorithms.apo import ChatClient, LLMCallError

MESSAGES = [{"role": "user", "content": "hello"}]


class Waits(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
async def client(openai_server: OpenAIServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=openai_server.base_url, api_key="test", max_retries=0) as c:
        yield c


def chat(client: openai.AsyncOpenAI, waits: Waits, **options: float) -> ChatClient:
    settings = {"max_retries": 3, "backoff": 1.0, "max_backoff": 5.0, "timeout": 10.0, **options}
    return ChatClient(client, sleep=waits, rng=random.Random(0), **settings)  # type: ignore[arg-type]


async def complete(chat_client: ChatClient) -> str:
    return await chat_client.complete(model="agl-test-model", messages=MESSAGES, temperature=0.5, purpose="a test call")


@pytest.mark.parametrize("status", [429, 500, 502, 503, 408])
async def test_overloaded_or_failing_endpoints_are_retried_with_backoff(
    openai_server: OpenAIServer, client: openai.AsyncOpenAI, status: int
) -> None:
    openai_server.fail_next(status, count=3)
    waits = Waits()
    chat_client = chat(client, waits)
    assert await complete(chat_client) == "echo: hello"
    assert len(openai_server.requests) == 4
    assert chat_client.stats.retries == 3 and chat_client.stats.failures == 0
    assert chat_client.stats.errors == {f"HTTP {status}": 3}
    # Exponential (1, 2, 4 s) with jitter of up to half, capped at max_backoff.
    for wait, ceiling in zip(waits, (1.0, 2.0, 4.0), strict=True):
        assert ceiling / 2 <= wait <= ceiling
    assert openai_server.requests[0]["temperature"] == 0.5


async def test_retry_after_is_honoured_up_to_the_cap(openai_server: OpenAIServer, client: openai.AsyncOpenAI) -> None:
    openai_server.fail_next(429, count=1, headers={"retry-after": "3"})
    openai_server.fail_next(429, count=1, headers={"retry-after-ms": "250"})
    openai_server.fail_next(429, count=1, headers={"retry-after": "120"})
    waits = Waits()
    assert await complete(chat(client, waits)) == "echo: hello"
    assert waits == [3.0, 0.25, 5.0]


async def test_a_call_that_keeps_failing_gives_up_and_says_why(
    openai_server: OpenAIServer, client: openai.AsyncOpenAI
) -> None:
    openai_server.fail_next(503, "overloaded", count=10)
    chat_client = chat(client, Waits(), max_retries=2)
    with pytest.raises(LLMCallError, match=r"a test call failed after 3 tries: HTTP 503"):
        await complete(chat_client)
    assert len(openai_server.requests) == 3
    assert chat_client.stats.failures == 1 and chat_client.stats.retries == 2


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_errors_a_retry_cannot_fix_fail_at_once(
    openai_server: OpenAIServer, client: openai.AsyncOpenAI, status: int
) -> None:
    openai_server.fail_next(status, count=5)
    waits = Waits()
    chat_client = chat(client, waits)
    with pytest.raises(LLMCallError, match=rf"after 1 tries: HTTP {status}"):
        await complete(chat_client)
    assert len(openai_server.requests) == 1 and waits == []


async def test_every_call_has_a_deadline() -> None:
    with OpenAIServer(latency=1.0) as slow:
        async with openai.AsyncOpenAI(base_url=slow.base_url, api_key="test", max_retries=0) as slow_client:
            chat_client = chat(slow_client, Waits(), timeout=0.1, max_retries=1)
            with pytest.raises(LLMCallError, match="after 2 tries: timeout"):
                await complete(chat_client)
    assert chat_client.stats.errors == {"timeout": 2}


async def test_an_empty_answer_is_a_failed_call(openai_server: OpenAIServer, client: openai.AsyncOpenAI) -> None:
    openai_server.script("   ")
    with pytest.raises(LLMCallError, match="answered with no text"):
        await complete(chat(client, Waits()))
