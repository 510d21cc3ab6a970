"""Well-kept OpenTelemetry instrumentations of agent frameworks, turned on by name.

agl writes no instrumentation of its own for frameworks: the OpenTelemetry contrib and
OpenInference projects keep one for each, and their spans follow conventions the adapters read
(:mod:`agl_core.adapter.conventions`). ``OtelTracer(instrument=["langchain", ...])`` and
``agl runner --instrument langchain`` turn them on against the tracer provider agl collects from,
so their spans land in the attempt they were made in like any other.

=================  ==============================================  ==========================
name               package (an agl extra installs it)              what it traces
=================  ==============================================  ==========================
``openai-v2``      opentelemetry-instrumentation-openai-v2         openai-python (GenAI conv.)
``openai``         openinference-instrumentation-openai            openai-python (OpenInference)
``langchain``      openinference-instrumentation-langchain         LangChain and LangGraph
``openai-agents``  openinference-instrumentation-openai-agents     the OpenAI Agents SDK
``litellm``        openinference-instrumentation-litellm           LiteLLM
``llama-index``    openinference-instrumentation-llama-index       LlamaIndex
``anthropic``      openinference-instrumentation-anthropic         the Anthropic SDK
=================  ==============================================  ==========================

A name may also be ``"module:Class"``: any ``BaseInstrumentor`` subclass. agl's own OpenAI
instrumentation (``instrument_openai``) stays on by default: it is the one that records token ids.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Instrumentation:
    module: str
    cls: str
    package: str
    extra: str
    env: tuple[tuple[str, str], ...] = ()
    events_as_logs: bool = False  # writes messages as GenAI events through the logs API


# The openai-v2 instrumentation records message contents only when told to (unless the user said
# otherwise), as events through the logs API: agl's logger provider puts them on the span.
_OPENAI_V2_ENV = (("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true"),)

INSTRUMENTATIONS: dict[str, Instrumentation] = {
    "openai-v2": Instrumentation(
        "opentelemetry.instrumentation.openai_v2",
        "OpenAIInstrumentor",
        "opentelemetry-instrumentation-openai-v2",
        "instrument-openai-v2",
        _OPENAI_V2_ENV,
        events_as_logs=True,
    ),
    "openai": Instrumentation(
        "openinference.instrumentation.openai",
        "OpenAIInstrumentor",
        "openinference-instrumentation-openai",
        "instrument-openai",
    ),
    "langchain": Instrumentation(
        "openinference.instrumentation.langchain",
        "LangChainInstrumentor",
        "openinference-instrumentation-langchain",
        "instrument-langchain",
    ),
    "openai-agents": Instrumentation(
        "openinference.instrumentation.openai_agents",
        "OpenAIAgentsInstrumentor",
        "openinference-instrumentation-openai-agents",
        "instrument-openai-agents",
    ),
    "litellm": Instrumentation(
        "openinference.instrumentation.litellm",
        "LiteLLMInstrumentor",
        "openinference-instrumentation-litellm",
        "instrument-litellm",
    ),
    "llama-index": Instrumentation(
        "openinference.instrumentation.llama_index",
        "LlamaIndexInstrumentor",
        "openinference-instrumentation-llama-index",
        "instrument-llama-index",
    ),
    "anthropic": Instrumentation(
        "openinference.instrumentation.anthropic",
        "AnthropicInstrumentor",
        "openinference-instrumentation-anthropic",
        "instrument-anthropic",
    ),
}


class MissingInstrumentationError(ImportError):
    """An instrumentation was asked for by name but its package is not installed."""


def _load(name: str) -> tuple[type, Instrumentation | None]:
    spec = INSTRUMENTATIONS.get(name)
    if spec is None:
        module, sep, cls = name.partition(":")
        if not sep or not module or not cls:
            known = ", ".join(INSTRUMENTATIONS)
            raise ValueError(f"unknown instrumentation {name!r}; use one of {known}, or 'module:Class'")
        return getattr(importlib.import_module(module), cls), None
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        raise MissingInstrumentationError(
            f"instrumentation {name!r} needs the package {spec.package}: pip install 'agl[{spec.extra}]' "
            f"(it also needs the framework it instruments); import failed: {exc}"
        ) from exc
    return getattr(module, spec.cls), spec


class Instrumented:
    """Instrumentors turned on by :func:`instrument`; :meth:`undo` turns them off again."""

    def __init__(self) -> None:
        self._on: list[Any] = []

    def undo(self) -> None:
        while self._on:
            instrumentor = self._on.pop()
            if getattr(instrumentor, "is_instrumented_by_opentelemetry", True):
                instrumentor.uninstrument()


def check(names: Iterable[str]) -> None:
    """Raise now if any named instrumentation is unknown or not installed."""
    for name in names:
        _load(name)


def instrument(names: Iterable[str], tracer_provider: Any) -> Instrumented:
    """Turn on the named instrumentations against ``tracer_provider`` (all are loaded first, so a
    missing package fails before any is turned on)."""
    loaded = [_load(name) for name in names]
    done = Instrumented()
    for cls, spec in loaded:
        for key, value in spec.env if spec else ():
            os.environ.setdefault(key, value)
        instrumentor = cls()
        if getattr(instrumentor, "is_instrumented_by_opentelemetry", False):
            continue  # turned on before, by the user or another tracer: theirs to turn off
        options: dict[str, Any] = {"tracer_provider": tracer_provider}
        if spec is not None and spec.events_as_logs:
            from agl_core.instrumentation.genai_events import events_logger_provider

            options["logger_provider"] = events_logger_provider()
        instrumentor.instrument(**options)
        done._on.append(instrumentor)
    return done


__all__ = ["INSTRUMENTATIONS", "Instrumented", "MissingInstrumentationError", "check", "instrument"]
