"""agl's LLM proxy: an OpenAI- and Anthropic-compatible proxy in front of vLLM servers that records
every call as a span in the store (token ids included, streamed or not) and exports Prometheus
metrics. See :mod:`agl_llm_proxy.app`."""

from agl_llm_proxy.app import LLMProxy, ProxyConfig
from agl_llm_proxy.backends import Backend, BackendPool, NoBackendError

__all__ = ["Backend", "BackendPool", "LLMProxy", "NoBackendError", "ProxyConfig"]
