"""Fixtures of the LLM proxy tests: a proxy recording into a real agl-server, in front of the test backend."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from agl_llm_proxy import LLMProxy
from support.openai_server import OpenAIServer

from agl_core.client import GrpcStore


@pytest.fixture
async def proxy(grpc_store: GrpcStore, openai_server: OpenAIServer) -> AsyncIterator[LLMProxy]:
    async with LLMProxy([openai_server.base_url], store=grpc_store) as running:
        yield running


@pytest.fixture
def dead_url() -> str:
    """The URL of a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
