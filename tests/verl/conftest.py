"""Fixtures of the verl plugin tests: agl-server, the LLM proxy over the test backend, a tracer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

pytest.importorskip("verl", reason="the verl extra is not installed (make test installs it)")

from agl_llm_proxy import LLMProxy
from support.openai_server import OpenAIServer, default_reply

from agl_core.client import GrpcStore
from agl_core.tracer import OtelTracer


@pytest.fixture
def tracer() -> Iterator[OtelTracer]:
    # The proxy records the LLM calls; the tracer records what the agent emits (rewards).
    tracer = OtelTracer(instrument_openai=False)
    tracer.init()
    try:
        yield tracer
    finally:
        tracer.teardown()


@pytest.fixture
def backend() -> Iterator[OpenAIServer]:
    """The test backend; replies stop on length (no EOS), so multi-turn prompts continue the context."""
    with OpenAIServer(reply=lambda body, i: {"content": default_reply(body, i), "finish_reason": "length"}) as llm:
        yield llm


@pytest.fixture
async def proxy(grpc_store: GrpcStore, backend: OpenAIServer) -> AsyncIterator[LLMProxy]:
    async with LLMProxy([backend.base_url], store=grpc_store) as running:
        yield running
