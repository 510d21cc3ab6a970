"""An agent calling an OpenAI-compatible server inside traced rollouts, against a real agl-server:
the spans land in the store and the adapter turns them into the right triplets."""

from __future__ import annotations

import asyncio
import threading

import openai
from support.openai_server import OpenAIServer

from agl_core.adapter import TracerTraceToTriplet, TraceToMessages
from agl_core.client import GrpcStore
from agl_core.emitter import emit_reward
from agl_core.store import SyncStore
from agl_core.tracer import OtelTracer
from agl_server.process import ServerProcess

TOKEN_IDS = {"return_token_ids": True}


async def math_agent(client: openai.AsyncOpenAI, model: str, question: str) -> None:
    """Two turns: a plain call, then a streamed follow-up; a reward after each."""
    messages = [{"role": "user", "content": question}]
    first = await client.chat.completions.create(model=model, messages=messages, extra_body=TOKEN_IDS)
    emit_reward(0.25)
    messages += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "are you sure"},
    ]
    stream = await client.chat.completions.create(
        model=model,
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=TOKEN_IDS,
    )
    async for _ in stream:
        pass
    emit_reward({"correct": 1.0, "brevity": 0.5}, primary="correct")


async def test_traced_rollouts_become_triplets_with_token_ids(
    tracer: OtelTracer, server: ServerProcess, openai_server: OpenAIServer
) -> None:
    store = GrpcStore(server.address)
    client = openai.AsyncOpenAI(base_url=openai_server.base_url, api_key="test")
    questions = ["what is 1 plus 1", "what is 2 plus 3"]
    try:
        enqueued = await store.enqueue_rollouts([{"input": {"question": q}} for q in questions])

        async def worker(name: str) -> None:  # what a runner does per attempt
            while (rollout := await store.dequeue_rollout(worker_id=name, wait=0.2)) is not None:
                attempt_id = rollout.attempt.attempt_id  # type: ignore[union-attr]
                async with tracer.trace_context(
                    "math-agent", store=store, rollout_id=rollout.rollout_id, attempt_id=attempt_id
                ):
                    await math_agent(client, openai_server.model, rollout.input["question"])
                await store.update_attempt(rollout.rollout_id, attempt_id, status="succeeded")

        await asyncio.gather(worker("w1"), worker("w2"))
        finished = await store.wait_for_rollouts([r.rollout_id for r in enqueued], timeout=30)
        assert [r.status for r in finished] == ["succeeded", "succeeded"]

        adapter = TracerTraceToTriplet()
        for rollout, question in zip(enqueued, questions, strict=True):
            spans = await store.query_spans(rollout.rollout_id)
            triplets = adapter.adapt(spans)
            answer = f"echo: {question}"
            turn_one = [{"role": "user", "content": question}]
            turn_two = [
                *turn_one,
                {"role": "assistant", "content": answer},
                {"role": "user", "content": "are you sure"},
            ]
            assert len(triplets) == 2
            first, second = triplets
            assert first.prompt.token_ids == openai_server.prompt_token_ids(turn_one)
            assert first.response.token_ids == openai_server.response_token_ids(answer)
            assert second.prompt.token_ids == openai_server.prompt_token_ids(turn_two)
            assert second.response.token_ids == openai_server.response_token_ids("echo: are you sure")
            assert (first.reward, second.reward) == (0.25, 1.0)
            assert first.prompt.content == turn_one and second.prompt.content == turn_two
            assert second.response.content == {"role": "assistant", "content": "echo: are you sure"}
            assert {t.metadata["rollout_id"] for t in triplets} == {rollout.rollout_id}
            assert first.metadata["response_id"] != second.metadata["response_id"]
            records = TraceToMessages().adapt(spans)
            assert records[1]["messages"] == [
                *turn_two,
                {"role": "assistant", "content": "echo: are you sure"},
            ]
    finally:
        await store.close()


def test_sync_agents_in_threads_share_one_store(
    tracer: OtelTracer, server: ServerProcess, openai_server: OpenAIServer
) -> None:
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test")
    with SyncStore(GrpcStore(server.address)) as store:
        rollouts = [store.start_rollout({"n": i}) for i in range(4)]
        traces = {}

        def run(rollout_index: int) -> None:
            rollout = rollouts[rollout_index]
            with tracer.trace_context_sync(
                store=store, rollout_id=rollout.rollout_id, attempt_id=rollout.attempt.attempt_id
            ) as trace_:
                stream = client.chat.completions.create(
                    model=openai_server.model,
                    messages=[{"role": "user", "content": f"count {rollout_index}"}],
                    stream=True,
                    extra_body=TOKEN_IDS,
                )
                for _ in stream:
                    pass
                emit_reward(float(rollout_index))
            traces[rollout_index] = trace_

        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for i, rollout in enumerate(rollouts):
            assert traces[i].stats.delivered == 3
            [triplet] = TracerTraceToTriplet().adapt(store.query_spans(rollout.rollout_id))
            assert triplet.response.token_ids == openai_server.response_token_ids(f"echo: count {i}")
            assert triplet.prompt.token_ids == openai_server.prompt_token_ids(
                [{"role": "user", "content": f"count {i}"}]
            )
            assert triplet.reward == float(i)
