"""Routing of the LLM proxy: rollout affinity, balancing, failover, all backends down, the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from agl_llm_proxy import BackendPool, LLMProxy, NoBackendError
from agl_llm_proxy.sse import SSEDecoder
from support.openai_server import OpenAIServer

from agl_core import semconv
from agl_core.client import GrpcStore
from agl_core.proto.trace_pb2 import SpanStatusCode
from agl_core.types import span_attributes
from agl_server.process import ServerProcess


def _served_by(server: OpenAIServer) -> list[str]:
    """The rollout named in each request a backend received (the agents below put it in the message)."""
    return [r["messages"][-1]["content"].split(":")[0] for r in server.requests]


async def _call(proxy: LLMProxy, rollout_id: str, attempt_id: str, turn: int) -> str:
    client = openai.AsyncOpenAI(
        base_url=f"{proxy.url}/rollout/{rollout_id}/attempt/{attempt_id}/v1", api_key="t", max_retries=0
    )
    reply = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": f"{rollout_id}: turn {turn}"}]
    )
    return reply.choices[0].message.content or ""


async def test_rollouts_stick_to_one_backend_and_spread_over_all(grpc_store: GrpcStore) -> None:
    with OpenAIServer() as first, OpenAIServer() as second:
        async with LLMProxy([first.base_url, second.base_url], store=grpc_store) as proxy:
            rollouts = [await grpc_store.start_rollout({"i": i}) for i in range(4)]
            for turn in range(3):
                for rollout in rollouts:
                    assert rollout.attempt is not None
                    await _call(proxy, rollout.rollout_id, rollout.attempt.attempt_id, turn)
        by_first, by_second = _served_by(first), _served_by(second)
        assert set(by_first).isdisjoint(by_second)  # affinity: a rollout never moved
        assert len(set(by_first)) == len(set(by_second)) == 2  # balanced: two rollouts each
        assert len(by_first) == len(by_second) == 6
        for rollout in rollouts:
            spans = await grpc_store.query_spans(rollout.rollout_id)
            backends = {span_attributes(s)[semconv.LLM_PROXY_BACKEND] for s in spans}
            assert len(spans) == 3 and len(backends) == 1


async def test_new_rollouts_go_to_the_least_busy_backend() -> None:
    pool = BackendPool(["http://a:1/v1", "http://b:2"])
    first = pool.choose("r1")
    first.in_flight += 1
    assert pool.choose("r2").url != first.url  # the idle one
    assert pool.choose("r1") is first  # affinity wins over load
    assert [b.url for b in pool.backends] == ["http://a:1", "http://b:2"]
    pool.set_urls(["http://b:2"])
    assert pool.affinity("r1") is None or pool.affinity("r1") == "http://b:2"
    with pytest.raises(NoBackendError, match="every backend failed"):
        pool.choose("r3", exclude={"http://b:2"})
    with pytest.raises(NoBackendError, match="--backend"):
        BackendPool([]).choose(None)


async def test_a_dead_backend_fails_over_and_the_rollout_stays_moved(grpc_store: GrpcStore, dead_url: str) -> None:
    with OpenAIServer() as alive:
        async with LLMProxy([dead_url, alive.base_url], store=grpc_store) as proxy:
            rollouts = [await grpc_store.start_rollout({"i": i}) for i in range(2)]
            for turn in range(2):
                for rollout in rollouts:
                    assert rollout.attempt is not None
                    reply = await _call(proxy, rollout.rollout_id, rollout.attempt.attempt_id, turn)
                    assert reply == f"echo: {rollout.rollout_id}: turn {turn}"
            status = {b["url"]: b for b in proxy.pool.status()}
            dead = status[dead_url.removesuffix("/v1")]
            assert dead["healthy"] is False and dead["failures"] == 1 and dead["served"] == 0
            assert "Connect" in str(dead["last_error"])
            assert {proxy.pool.affinity(r.rollout_id) for r in rollouts} == {alive.base_url.removesuffix("/v1")}
        assert len(alive.requests) == 4


async def test_every_backend_down_is_a_502_recorded_as_a_failed_call(grpc_store: GrpcStore, dead_url: str) -> None:
    async with LLMProxy([dead_url], store=grpc_store) as proxy:
        rollout = await grpc_store.start_rollout({"q": 1})
        assert rollout.attempt is not None
        with pytest.raises(openai.InternalServerError) as raised:
            await _call(proxy, rollout.rollout_id, rollout.attempt.attempt_id, 0)
        assert raised.value.status_code == 502
        assert "every backend failed" in raised.value.message
        [span] = await grpc_store.query_spans(rollout.rollout_id)
        assert span.status.code == SpanStatusCode.SPAN_STATUS_CODE_ERROR
        assert span_attributes(span)[semconv.HTTP_RESPONSE_STATUS_CODE] == 502
    async with LLMProxy([], store=grpc_store) as empty:
        with pytest.raises(openai.InternalServerError, match="--backend"):
            await _call(empty, rollout.rollout_id, rollout.attempt.attempt_id, 1)


async def test_many_concurrent_streams_each_get_their_own_span(grpc_store: GrpcStore) -> None:
    with OpenAIServer(chunk_tokens=1) as backend:
        async with LLMProxy([backend.base_url], store=grpc_store) as proxy:
            rollouts = [await grpc_store.start_rollout({"i": i}) for i in range(16)]

            async def agent(index: int) -> str:
                rollout = rollouts[index]
                assert rollout.attempt is not None
                client = openai.AsyncOpenAI(
                    base_url=proxy.as_resource("m").get_base_url(rollout.rollout_id, rollout.attempt.attempt_id),
                    api_key="t",
                    max_retries=0,
                )
                stream = await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": f"agent {index} says hello"}], stream=True
                )
                return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

            replies = await asyncio.gather(*(agent(i) for i in range(16)))
        assert replies == [f"echo: agent {i} says hello" for i in range(16)]
        for index, rollout in enumerate(rollouts):
            [span] = await grpc_store.query_spans(rollout.rollout_id)
            ids = span_attributes(span)[semconv.LLM_RESPONSE_TOKEN_IDS]
            assert ids == backend.response_token_ids(f"echo: agent {index} says hello")


def test_sse_decoder_handles_split_events_crlf_and_long_lines() -> None:
    long_ids = list(range(40_000))  # a prompt's token ids: far beyond a line reader's limit
    payload = (
        b"data: " + json.dumps({"prompt_token_ids": long_ids}).encode() + b"\r\n\r\n"
        b": a comment\n\n"
        b'data: {"a": 1}\n\ndata: [DONE]\n\n'
    )
    decoder = SSEDecoder()
    events = []
    for start in range(0, len(payload), 7):  # every split point, including inside \r\n
        events += decoder.feed(payload[start : start + 7])
    events += decoder.close()
    assert [e.json() for e in events] == [{"prompt_token_ids": long_ids}, None, {"a": 1}, None]
    assert [e.done for e in events] == [False, False, False, True]
    assert SSEDecoder().close() == []
    tail = SSEDecoder()
    assert tail.feed(b'data: {"b": 2}') == []
    assert [e.json() for e in tail.close()] == [{"b": 2}]


@pytest.mark.parametrize("command", [["-m", "agl_llm_proxy"], ["-m", "agl_core.cli", "llm-proxy"]])
def test_the_cli_serves_and_records(
    server: ServerProcess, openai_server: OpenAIServer, tmp_path: Path, command: list[str]
) -> None:
    ready = tmp_path / "ready.json"
    with open(tmp_path / "proxy.log", "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                *command,
                "--backend",
                openai_server.base_url,
                "--store",
                server.address,
                "--port",
                "0",
                "--ready-file",
                str(ready),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        line = process.stdout.readline().decode()  # type: ignore[union-attr]  # printed once serving
        assert line.startswith("agl-llm-proxy serving on http://127.0.0.1:"), line
        port = json.loads(ready.read_text())["port"]

        async def scenario() -> None:
            async with GrpcStore(server.address) as store:
                rollout = await store.start_rollout({"q": 1})
                assert rollout.attempt is not None
                client = openai.AsyncOpenAI(
                    base_url=f"http://127.0.0.1:{port}/rollout/{rollout.rollout_id}/attempt/"
                    f"{rollout.attempt.attempt_id}/v1",
                    api_key="t",
                    max_retries=0,
                )
                stream = await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}], stream=True
                )
                assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "echo: hi"
                [span] = await store.query_spans(rollout.rollout_id)
                assert span_attributes(span)[semconv.LLM_RESPONSE_TOKEN_IDS] == openai_server.response_token_ids(
                    "echo: hi"
                )

        asyncio.run(scenario())
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0
        process.stdout.close()  # type: ignore[union-attr]
    usage = subprocess.run(
        [sys.executable, "-m", "agl_llm_proxy"], capture_output=True, text=True, timeout=30, env={"PATH": ""}
    )
    assert usage.returncode == 2 and "give at least one --backend URL" in usage.stderr
