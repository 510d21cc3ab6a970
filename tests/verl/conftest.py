"""Fixtures of the verl plugin tests: agl-server, the LLM proxy over the test backend, a tracer."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from agl_llm_proxy import LLMProxy
from support.openai_server import OpenAIServer, default_reply

from agl_core.client import GrpcStore
from agl_core.tracer import OtelTracer

# The test modules import torch and verl at module level, so without the extra they cannot even be
# imported: each is reported as skipped, with the reason, instead of being collected.
MISSING = [name for name in ("torch", "verl") if importlib.util.find_spec(name) is None]
REASON = (
    f"the verl extra is not installed (no {', '.join(MISSING)}): `pip install -e '.[verl]'` (make test installs it)"
)

if MISSING:

    class _NotImported(pytest.Module):
        def collect(self) -> list[pytest.Item]:
            pytest.skip(REASON, allow_module_level=True)

    def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module:
        return _NotImported.from_parent(parent, path=module_path)  # type: ignore[no-any-return]


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
