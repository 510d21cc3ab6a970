"""GET /metrics on the LLM proxy: requests, latency, tokens and errors per backend, read with the
Prometheus client's own text parser after real calls."""

from __future__ import annotations

import aiohttp
import anthropic
import openai
from agl_llm_proxy import LLMProxy, ProxyConfig
from prometheus_client.parser import text_string_to_metric_families
from support.openai_server import OpenAIServer

from agl_core.client import GrpcStore

QUESTION = [{"role": "user", "content": "count my tokens"}]


async def _scrape(
    url: str, headers: dict[str, str] | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_calls_tokens_and_errors_per_backend(
    grpc_store: GrpcStore, openai_server: OpenAIServer, dead_url: str
) -> None:
    # The dead backend is listed first: the first call goes to it, fails to connect, and moves on.
    config = ProxyConfig(retry_after=3600)
    async with LLMProxy([dead_url, openai_server.base_url], store=grpc_store, config=config) as proxy:
        good = openai_server.base_url.removesuffix("/v1")
        dead = dead_url.removesuffix("/v1")
        rollout = await grpc_store.start_rollout({"q": 1})
        assert rollout.attempt is not None
        recorded_url = proxy.as_resource("m").get_base_url(rollout.rollout_id, rollout.attempt.attempt_id)
        prompt = completion = 0
        async with (
            openai.AsyncOpenAI(base_url=recorded_url, api_key="t", max_retries=0) as recorded,
            openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="t", max_retries=0) as plain,
            anthropic.AsyncAnthropic(base_url=proxy.url, api_key="t", max_retries=0) as claude,
        ):
            answer = await recorded.chat.completions.create(model="m", messages=QUESTION)
            assert answer.usage is not None
            prompt, completion = prompt + answer.usage.prompt_tokens, completion + answer.usage.completion_tokens
            stream = await plain.chat.completions.create(
                model="m", messages=QUESTION, stream=True, stream_options={"include_usage": True}
            )
            async for chunk in stream:
                if chunk.usage:
                    prompt, completion = prompt + chunk.usage.prompt_tokens, completion + chunk.usage.completion_tokens
            message = await claude.messages.create(model="m", max_tokens=16, messages=QUESTION)
            prompt, completion = prompt + message.usage.input_tokens, completion + message.usage.output_tokens
            openai_server.fail_next(500, "overloaded")
            try:
                await plain.chat.completions.create(model="m", messages=QUESTION)
            except openai.InternalServerError:
                pass
            else:
                raise AssertionError("the injected failure did not reach the caller")
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"{proxy.url}/v1/chat/completions", data=b"[") as resp,
            ):
                assert resp.status == 400

        samples = await _scrape(proxy.url)
    requests = "agl_llm_proxy_requests_total"
    assert _value(samples, requests, backend=good, route="chat", status="200") == 2
    assert _value(samples, requests, backend=good, route="messages", status="200") == 1
    assert _value(samples, requests, backend=good, route="chat", status="500") == 1
    assert _value(samples, requests, backend="none", route="chat", status="400") == 1
    assert _value(samples, "agl_llm_proxy_request_duration_seconds_count", backend=good, route="chat") == 3
    assert _value(samples, "agl_llm_proxy_request_duration_seconds_sum", backend=good, route="chat") > 0
    assert _value(samples, "agl_llm_proxy_tokens_total", backend=good, type="prompt") == prompt > 0
    assert _value(samples, "agl_llm_proxy_tokens_total", backend=good, type="completion") == completion > 0
    assert _value(samples, "agl_llm_proxy_backend_errors_total", backend=dead, reason="connect") == 1
    assert _value(samples, "agl_llm_proxy_backend_errors_total", backend=good, reason="http_status") == 1
    assert _value(samples, "agl_llm_proxy_spans_total", outcome="recorded") == 1


async def test_metrics_need_the_proxy_token_when_one_is_set(openai_server: OpenAIServer) -> None:
    async with LLMProxy([openai_server.base_url], config=ProxyConfig(token="s3cret")) as proxy:
        async with aiohttp.ClientSession() as http, http.get(f"{proxy.url}/metrics") as resp:
            assert resp.status == 401
        samples = await _scrape(proxy.url, {"Authorization": "Bearer s3cret"})
        # The refused scrape is not a call: nothing counted yet.
        assert not [key for key in samples if key[0] == "agl_llm_proxy_requests_total"]
        async with aiohttp.ClientSession() as http, http.get(f"{proxy.url}/health") as resp:
            assert resp.status == 200  # probes stay open
