"""Resources that rollouts run with: LLM endpoints, prompt templates, custom values."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(kw_only=True)
class LLM:
    """An OpenAI-compatible endpoint (``endpoint`` is the base URL, e.g. ``http://host:8000/v1``)."""

    endpoint: str
    model: str
    api_key: str | None = None
    sampling_parameters: dict[str, Any] = field(default_factory=dict)

    def get_base_url(self, rollout_id: str | None = None, attempt_id: str | None = None) -> str:
        return self.endpoint


@dataclass(kw_only=True)
class ProxyLLM(LLM):
    """An LLM behind the agl LLM proxy: calls go to a per-attempt route so each is recorded."""

    def get_base_url(self, rollout_id: str | None = None, attempt_id: str | None = None) -> str:
        if not rollout_id or not attempt_id:
            raise ValueError("ProxyLLM needs the rollout and attempt ids to build its per-attempt URL")
        base = self.endpoint.rstrip("/")
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        return f"{base}/rollout/{rollout_id}/attempt/{attempt_id}/v1"


class PromptTemplateEngine(StrEnum):
    F_STRING = "f-string"
    JINJA = "jinja"


@dataclass(kw_only=True)
class PromptTemplate:
    """A prompt template: ``format(**values)`` renders it with the chosen engine."""

    template: str
    engine: PromptTemplateEngine = PromptTemplateEngine.F_STRING

    def __post_init__(self) -> None:
        self.engine = PromptTemplateEngine(self.engine)

    def format(self, **values: Any) -> str:
        if self.engine == PromptTemplateEngine.JINJA:
            import jinja2  # optional: only needed for jinja templates

            return jinja2.Template(self.template).render(**values)
        return self.template.format(**values)


@dataclass(kw_only=True)
class CustomResource:
    """A resource of a type agl does not know; ``type`` tells consumers how to read ``value``."""

    type: str
    value: Any = None


Resource = LLM | ProxyLLM | PromptTemplate | CustomResource
NamedResources = dict[str, Resource]


@dataclass(kw_only=True)
class ResourcesUpdate:
    """A named, versioned set of resources."""

    resources_id: str
    version: int
    create_time: float
    update_time: float
    resources: NamedResources = field(default_factory=dict)
    #: The namespace the set belongs to; "latest" is per namespace.
    namespace: str = "default"
