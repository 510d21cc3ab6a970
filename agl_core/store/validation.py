"""Checks of incoming requests that every backend applies before touching its data.

Each check raises :class:`InvalidArgumentError` with a message that names the field and says
what a valid value looks like.
"""

from __future__ import annotations

from typing import Any

from agl_core.errors import InvalidArgumentError
from agl_core.proto import resources_pb2, store_pb2, trace_pb2
from agl_core.store import rules
from agl_core.types.values import check_struct, check_value

_ENGINES = frozenset(resources_pb2.PromptTemplateEngine.values())
MAX_ID_LENGTH = 256
MAX_SPAN_ID_BYTES = 16
# A page larger than this would risk the 4 MiB default message limit of clients.
MAX_PAGE = 1000


def require_id(value: str, field: str) -> str:
    if not value:
        raise InvalidArgumentError(f"{field} is required")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgumentError(f"{field} is {len(value)} characters long; ids are at most {MAX_ID_LENGTH}")
    return value


def optional_id(value: str, field: str) -> str:
    return require_id(value, field) if value else value


def check_spec(spec: store_pb2.RolloutSpec, where: str) -> None:
    optional_id(spec.rollout_id, f"{where}.rollout_id")
    if not spec.HasField("input"):
        raise InvalidArgumentError(f"{where}.input is required; send a null Value for a task without input")
    check_value(spec.input, f"{where}.input")
    if spec.mode not in rules.ROLLOUT_MODES:
        raise InvalidArgumentError(f"{where}.mode {spec.mode} is not a RolloutMode; use train, val or test")
    optional_id(spec.resources_id, f"{where}.resources_id")
    rules.check_config(spec.config, f"{where}.config")
    check_struct(spec.metadata, f"{where}.metadata")


def check_resources(resources: Any, where: str = "resources") -> None:
    """Validate a ``map<string, Resource>``."""
    for name, resource in resources.items():
        if not name:
            raise InvalidArgumentError(f"{where} has a resource with an empty name")
        label = f"{where}[{name!r}]"
        kind = resource.WhichOneof("kind")
        if kind is None:
            raise InvalidArgumentError(f"{label} has no kind; set llm, proxy_llm, prompt_template or custom")
        if kind in ("llm", "proxy_llm"):
            llm = getattr(resource, kind)
            if not llm.endpoint:
                raise InvalidArgumentError(f"{label}.endpoint is required (the base URL of the model server)")
            if not llm.model:
                raise InvalidArgumentError(f"{label}.model is required")
            check_struct(llm.sampling_parameters, f"{label}.sampling_parameters")
        elif kind == "prompt_template":
            if not resource.prompt_template.template:
                raise InvalidArgumentError(f"{label}.template is empty")
            if resource.prompt_template.engine not in _ENGINES:
                raise InvalidArgumentError(f"{label}.engine {resource.prompt_template.engine} is unknown")
        elif kind == "custom":
            if not resource.custom.type:
                raise InvalidArgumentError(f"{label}.type is required (a name consumers recognise)")
            if resource.custom.HasField("value"):
                check_value(resource.custom.value, f"{label}.value")


def span_ids_well_formed(span: trace_pb2.Span) -> bool:
    """The cheap test of :func:`check_span`, for the hot path: True when the span can be placed."""
    return bool(
        span.rollout_id
        and span.attempt_id
        and 0 < len(span.span_id) <= MAX_SPAN_ID_BYTES
        and len(span.trace_id) <= 16
        and span.sequence_id >= 0
    )


def check_span(span: trace_pb2.Span, where: str) -> None:
    """Raise for a span that cannot be placed in the store (ids missing or malformed)."""
    if not span.rollout_id:
        raise InvalidArgumentError(f"{where}.rollout_id is required")
    if not span.attempt_id:
        raise InvalidArgumentError(f"{where}.attempt_id is required")
    if not span.span_id or len(span.span_id) > MAX_SPAN_ID_BYTES:
        raise InvalidArgumentError(
            f"{where}.span_id has {len(span.span_id)} bytes; it must have 1 to {MAX_SPAN_ID_BYTES}"
        )
    if len(span.trace_id) > 16:
        raise InvalidArgumentError(f"{where}.trace_id has {len(span.trace_id)} bytes; OpenTelemetry uses 16")
    if span.sequence_id < 0:
        raise InvalidArgumentError(f"{where}.sequence_id is {span.sequence_id}; it must not be negative")


def page(limit: int, offset: int) -> tuple[int, int]:
    """Normalise limit/offset: 0 means the largest page."""
    if limit < 0:
        raise InvalidArgumentError(f"limit is {limit}; it must be 0 (the largest page) or positive")
    if offset < 0:
        raise InvalidArgumentError(f"offset is {offset}; it must not be negative")
    return (min(limit, MAX_PAGE) if limit else MAX_PAGE), offset


def descending(order: int) -> bool:
    if order not in rules.SORT_ORDERS:
        raise InvalidArgumentError(f"order {order} is not a SortOrder; use asc or desc")
    return order == rules.t.SORT_ORDER_DESC


def sort_field(value: str, allowed: tuple[str, ...]) -> str:
    if not value:
        return allowed[0]
    if value not in allowed:
        raise InvalidArgumentError(f"sort_by {value!r} is not supported; use one of: {', '.join(allowed)}")
    return value
