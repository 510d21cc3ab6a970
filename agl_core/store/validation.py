"""Checks of incoming requests that every backend applies before touching its data.

Each check raises :class:`InvalidArgumentError` with a message that names the field and says
what a valid value looks like.
"""

from __future__ import annotations

from typing import Any

from agl_core.errors import InvalidArgumentError
from agl_core.proto import resources_pb2, store_pb2, trace_pb2
from agl_core.store import routing, rules
from agl_core.types.values import check_struct, check_value

_ENGINES = frozenset(resources_pb2.PromptTemplateEngine.values())
# Ids become LMDB keys, which hold at most 511 bytes. Two ids plus 64 bytes of fixed-width parts
# (prefixes, big-endian numbers) fit with room to spare, so any composite key of the store does.
# Counted in UTF-8 bytes, not characters: "é" * 200 is 400 bytes.
MAX_ID_BYTES = 200
# Sequence ids a client sets itself (spans, reserved with NextSequenceIds) stay at most this: the
# largest integer JavaScript numbers hold exactly, so every client reads them back unchanged, and
# far from 2**63 - 1, so the ids the store assigns after them never overflow.
MAX_SEQUENCE_ID = 2**53 - 1
MAX_SPAN_ID_BYTES = 16
MAX_TRACE_ID_BYTES = 16  # OpenTelemetry's
# A page larger than this would risk the 4 MiB default message limit of clients.
MAX_PAGE = 1000


def id_fits(value: str) -> bool:
    """Whether ``value`` is at most :data:`MAX_ID_BYTES` long in UTF-8 (cheap for short ids)."""
    return len(value) <= MAX_ID_BYTES // 4 or len(value.encode("utf-8", "surrogatepass")) <= MAX_ID_BYTES


def check_id_length(value: str, field: str) -> None:
    if not id_fits(value):
        size = len(value.encode("utf-8", "surrogatepass"))
        raise InvalidArgumentError(
            f"{field} is {size} bytes long in UTF-8; ids are at most {MAX_ID_BYTES} bytes (a stored key holds two "
            "ids at most within LMDB's 511-byte limit); use a shorter id or a hash of it"
        )


def require_id(value: str, field: str) -> str:
    if not value:
        raise InvalidArgumentError(f"{field} is required")
    check_id_length(value, field)
    return value


def optional_id(value: str, field: str) -> str:
    return require_id(value, field) if value else value


def check_spec(spec: store_pb2.RolloutSpec, where: str) -> None:
    optional_id(spec.rollout_id, f"{where}.rollout_id")
    if not spec.HasField("input"):
        raise InvalidArgumentError(f"{where}.input is required; send a null Value for a task without input")
    check_value(spec.input, f"{where}.input")
    routing.queue(spec.queue, f"{where}.queue")
    routing.check_labels(spec.labels, f"{where}.labels")
    routing.check_priority(spec.priority, f"{where}.priority")
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
        and len(span.trace_id) <= MAX_TRACE_ID_BYTES
        and 0 <= span.sequence_id <= MAX_SEQUENCE_ID
        and id_fits(span.rollout_id)
        and id_fits(span.attempt_id)
    )


try:  # compiled with the span loop where a C compiler is present (agl_core/store/span_id_check.pyx)
    from agl_core.store.span_id_check import SpanIdCheck  # type: ignore[import-not-found]

    _ID_CHECK: Any = SpanIdCheck(
        store_pb2.IngestSpansRequest.DESCRIPTOR,
        trace_pb2.Span.DESCRIPTOR,
        max_id_bytes=MAX_ID_BYTES,
        max_span_id_bytes=MAX_SPAN_ID_BYTES,
        max_trace_id_bytes=MAX_TRACE_ID_BYTES,
        max_sequence_id=MAX_SEQUENCE_ID,
    )
except ImportError:
    _ID_CHECK = None


def batch_span_ids_well_formed(whole: bytes) -> bool:
    """:func:`span_ids_well_formed` of every span of the serialized IngestSpansRequest ``whole``
    (whose spans parse as headers), read from its bytes in C: 0.6 us for ten spans against 7-12 us
    of Python over their headers (``bench/edge_check_bench.py``). False where not built or not
    sure: then check each header."""
    return _ID_CHECK is not None and bool(_ID_CHECK.check(whole))


def batch_span_places(whole: bytes) -> list[Any] | None:
    """What the store reads of each span of the serialized IngestSpansRequest ``whole`` to place it
    (``rollout_id``, ``attempt_id``, ``span_id``, ``sequence_id`` and whether it has a ``resource``,
    as its ``wire.SpanHeader`` has them), read from its bytes in C, when every span's ids pass
    :func:`span_ids_well_formed`. None where not built, or not so, or not sure: then parse the
    headers and check each."""
    return _ID_CHECK.headers(whole) if _ID_CHECK is not None else None


def check_span(span: trace_pb2.Span, where: str) -> None:
    """Raise for a span that cannot be placed in the store (ids missing or malformed)."""
    require_id(span.rollout_id, f"{where}.rollout_id")
    require_id(span.attempt_id, f"{where}.attempt_id")
    if not span.span_id or len(span.span_id) > MAX_SPAN_ID_BYTES:
        raise InvalidArgumentError(
            f"{where}.span_id has {len(span.span_id)} bytes; it must have 1 to {MAX_SPAN_ID_BYTES}"
        )
    if len(span.trace_id) > MAX_TRACE_ID_BYTES:
        raise InvalidArgumentError(f"{where}.trace_id has {len(span.trace_id)} bytes; OpenTelemetry uses 16")
    check_sequence_id(span.sequence_id, f"{where}.sequence_id")


def check_sequence_id(value: int, field: str) -> None:
    """A sequence id a client sets: 0 (the store assigns one) up to :data:`MAX_SEQUENCE_ID`."""
    if not 0 <= value <= MAX_SEQUENCE_ID:
        raise InvalidArgumentError(
            f"{field} is {value}; sequence ids a client sets must be between 0 (let the store assign one) and "
            f"2**53 - 1 = {MAX_SEQUENCE_ID}"
        )


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
