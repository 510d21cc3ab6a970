"""The CPU rollout engine's server behind agl's LLM proxy: token ids, log probabilities, streams, tool
calls, bad input, the sleep gate and weight loads, on a tiny model built on the spot (no Ray)."""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import pytest
import torch
from agl_llm_proxy import LLMProxy

from agl_core.adapter import TracerTraceToTriplet
from agl_core.client import GrpcStore
from agl_plugins.verl.cpu_engine.generation import CpuGenerator, GenRequest, Sampling
from agl_plugins.verl.cpu_engine.server import CpuServer

EXAMPLE = Path(__file__).parents[2] / "examples" / "verl_math"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(EXAMPLE))
    try:
        from tiny_model import build
    finally:
        sys.path.pop(0)
    return build(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
async def engine(model_dir: Path) -> AsyncIterator[CpuServer]:
    server = await CpuServer(CpuGenerator(str(model_dir)), model_name="tiny", max_tokens=6).start()
    try:
        yield server
    finally:
        await server.stop()


def _url(server: CpuServer) -> str:
    return f"http://{server.host}:{server.port}"


async def test_answers_carry_token_ids_and_logprobs_the_proxy_records(engine: CpuServer, grpc_store: GrpcStore) -> None:
    rollout = await grpc_store.start_rollout({"q": 1})
    async with LLMProxy([_url(engine)], store=grpc_store) as proxy:
        client = openai.AsyncOpenAI(
            base_url=proxy.as_resource("tiny").get_base_url(rollout.rollout_id, rollout.attempt.attempt_id),
            api_key="t",
            max_retries=0,
        )
        reply = await client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "What is 2 + 3?"}], max_tokens=5, logprobs=True
        )
    extra = reply.model_extra or {}
    choice = reply.choices[0]
    token_ids = (choice.model_extra or {})["token_ids"]
    prompt_ids = extra["prompt_token_ids"]
    assert 1 <= len(token_ids) <= 5 and reply.usage.completion_tokens == len(token_ids)
    assert reply.usage.prompt_tokens == len(prompt_ids)
    logprobs = [item.logprob for item in choice.logprobs.content]
    assert len(logprobs) == len(token_ids) and all(math.isfinite(v) and v <= 0 for v in logprobs)
    assert choice.finish_reason in ("stop", "length")
    # The proxy recorded the call with the engine's token ids: a training sample.
    [triplet] = TracerTraceToTriplet().adapt(await grpc_store.query_spans(rollout.rollout_id))
    assert triplet.prompt.token_ids == prompt_ids and triplet.response.token_ids == token_ids


async def test_logprobs_are_those_of_the_served_weights(model_dir: Path) -> None:
    generator = CpuGenerator(str(model_dir), logprobs_mode="raw_logprobs")
    prompt = generator.chat_prompt_ids([{"role": "user", "content": "hello"}])
    [result] = generator.generate([GenRequest(prompt, 4, Sampling(temperature=1.0))])
    with torch.no_grad():
        logits = generator.model(torch.tensor([prompt + result.token_ids])).logits[0].float()
    expected = [
        torch.log_softmax(logits[len(prompt) - 1 + i], -1)[token].item() for i, token in enumerate(result.token_ids)
    ]
    assert result.logprobs == pytest.approx(expected, abs=1e-4)


async def test_text_completions_n_and_streams(engine: CpuServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            _url(engine) + "/v1/completions", json={"prompt": [5, 6, 7], "max_tokens": 3, "n": 3, "logprobs": 0}
        ) as response:
            body = await response.json()
        assert [c["prompt_token_ids"] for c in body["choices"]] == [[5, 6, 7]] * 3
        assert all(len(c["token_ids"]) == len(c["logprobs"]["token_logprobs"]) for c in body["choices"])
        async with http.post(
            _url(engine) + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True, "logprobs": True},
        ) as response:
            assert response.content_type == "text/event-stream"
            events = [line[6:] for line in (await response.text()).splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    ids = [t for c in chunks for choice in c["choices"] for t in choice.get("token_ids") or []]
    assert chunks[0]["prompt_token_ids"] and 1 <= len(ids) <= 4
    assert chunks[-1]["usage"]["completion_tokens"] == len(ids)


async def test_hermes_tool_calls_become_openai_tool_calls(engine: CpuServer, monkeypatch: pytest.MonkeyPatch) -> None:
    call = '<tool_call>{"name": "calculate", "arguments": {"expression": "2+3"}}</tool_call>'
    ids = engine.generator.tokenizer(call, add_special_tokens=False)["input_ids"]
    choice = engine._chat_choice(0, _result(ids), {"tools": [{"type": "function", "function": {"name": "calculate"}}]})
    assert choice["finish_reason"] == "tool_calls"
    [tool_call] = choice["message"]["tool_calls"]
    assert tool_call["function"] == {"name": "calculate", "arguments": json.dumps({"expression": "2+3"})}
    assert choice["token_ids"] == ids  # the sample is the tokens, whatever the parser made of them


def _result(ids: list[int]) -> object:
    from agl_plugins.verl.cpu_engine.generation import GenResult

    return GenResult(ids, [0.0] * len(ids), "stop")


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/v1/chat/completions", {"messages": []}, "'messages' is required"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": 100}, "n must be"),
        ("/v1/completions", {"prompt": {"a": 1}}, "'prompt' must be"),
        ("/v1/completions", {"prompt": list(range(5000))}, "max_model_len"),
    ],
)
async def test_bad_requests_get_400_with_a_reason(engine: CpuServer, path: str, body: dict, fragment: str) -> None:
    async with aiohttp.ClientSession() as http, http.post(_url(engine) + path, json=body) as response:
        assert response.status == 400
        assert fragment in (await response.json())["error"]["message"]
        async with http.get(_url(engine) + "/health") as health:
            assert (await health.json())["awake"] is True  # and it keeps serving


async def test_sleep_holds_new_calls_until_wake_up(engine: CpuServer) -> None:
    await engine.sleep()
    body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
    async with aiohttp.ClientSession() as http:
        call = asyncio.create_task(http.post(_url(engine) + "/v1/chat/completions", json=body))
        await asyncio.sleep(0.3)  # the call has reached the server: it waits at the gate
        assert not call.done() and engine.served == 0
        engine.wake_up()
        response = await asyncio.wait_for(call, 30)
        assert response.status == 200 and engine.served == 1


async def test_loaded_weights_change_what_is_served(model_dir: Path) -> None:
    serving = CpuGenerator(str(model_dir), load_weights=False)  # random weights, as verl's load_format=dummy
    trained = CpuGenerator(str(model_dir))
    prompt = trained.chat_prompt_ids([{"role": "user", "content": "hi"}])
    greedy = Sampling(temperature=0.0)
    assert serving.load_weights(trained.model.state_dict().items()) == len(trained.model.state_dict())
    [served] = serving.generate([GenRequest(prompt, 5, greedy)])
    [expected] = trained.generate([GenRequest(prompt, 5, greedy)])
    assert served.token_ids == expected.token_ids
    assert served.logprobs == pytest.approx(expected.logprobs, abs=1e-4)
    with pytest.raises(KeyError, match=r"no parameter 'not\.a\.weight'"):
        serving.load_weights([("not.a.weight", torch.zeros(1))])


def test_registered_in_verls_registries_under_agl_cpu() -> None:
    from verl.plugin.platform import PlatformRegistry
    from verl.workers.rollout.base import get_rollout_class
    from verl.workers.rollout.replica import get_rollout_replica_class

    from agl_plugins.verl.cpu_engine import register
    from agl_plugins.verl.cpu_engine.platform import PlatformCPU, dedupe_backend
    from agl_plugins.verl.cpu_engine.replica import CpuReplica, engine_options
    from agl_plugins.verl.cpu_engine.rollout import CpuServerAdapter

    register()  # idempotent
    assert get_rollout_replica_class("agl_cpu") is CpuReplica
    assert get_rollout_class("agl_cpu", "async") is CpuServerAdapter
    assert PlatformRegistry.get("cpu") is PlatformCPU
    assert PlatformCPU().is_platform_available() is False  # only VERL_PLATFORM=cpu selects it
    assert dedupe_backend("cpu:gloo,cpu:gloo") == "cpu:gloo"
    assert dedupe_backend("cpu:gloo,cuda:nccl") == "cpu:gloo,cuda:nccl"

    class Rollout:
        engine_kwargs = {"agl_cpu": {"dtype": "float32", "max_bach": 8}}

    with pytest.raises(ValueError, match=r"unknown keys \['max_bach'\]"):
        engine_options(Rollout())
