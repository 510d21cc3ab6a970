"""Conversions between the Python types and the protobuf messages, in one place.

Every store call goes through here exactly once on the client side; the server and the embedded
store work on the messages directly, so nothing is converted twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import timestamp_pb2

from agl_core.errors import InvalidArgumentError
from agl_core.proto import resources_pb2, store_pb2, types_pb2
from agl_core.types.core import (
    Attempt,
    AttemptStatus,
    Rollout,
    RolloutConfig,
    RolloutEvent,
    RolloutMode,
    RolloutSpec,
    RolloutStatus,
    Worker,
    WorkerStatus,
)
from agl_core.types.resources import (
    LLM,
    CustomResource,
    PromptTemplate,
    PromptTemplateEngine,
    ProxyLLM,
    Resource,
    ResourcesUpdate,
)
from agl_core.types.values import from_struct, from_value, to_struct, to_value


def _enum_maps(py_enum: Any, pb_enum: Any, prefix: str) -> tuple[dict[Any, int], dict[int, Any]]:
    to_pb = {member: pb_enum.Value(prefix + member.name) for member in py_enum}
    return to_pb, {v: k for k, v in to_pb.items()}


ROLLOUT_STATUS_TO_PB, ROLLOUT_STATUS_FROM_PB = _enum_maps(RolloutStatus, types_pb2.RolloutStatus, "ROLLOUT_STATUS_")
ATTEMPT_STATUS_TO_PB, ATTEMPT_STATUS_FROM_PB = _enum_maps(AttemptStatus, types_pb2.AttemptStatus, "ATTEMPT_STATUS_")
MODE_TO_PB, MODE_FROM_PB = _enum_maps(RolloutMode, types_pb2.RolloutMode, "ROLLOUT_MODE_")
WORKER_STATUS_TO_PB, WORKER_STATUS_FROM_PB = _enum_maps(WorkerStatus, types_pb2.WorkerStatus, "WORKER_STATUS_")
ENGINE_TO_PB = {
    PromptTemplateEngine.F_STRING: resources_pb2.PROMPT_TEMPLATE_ENGINE_F_STRING,
    PromptTemplateEngine.JINJA: resources_pb2.PROMPT_TEMPLATE_ENGINE_JINJA,
}
ENGINE_FROM_PB = {v: k for k, v in ENGINE_TO_PB.items()}
ENGINE_FROM_PB[resources_pb2.PROMPT_TEMPLATE_ENGINE_UNSPECIFIED] = PromptTemplateEngine.F_STRING


def _py_enum(enum_cls: Any, value: Any, what: str) -> Any:
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)
        raise InvalidArgumentError(f"{what} {value!r} is not one of: {allowed}") from None


def rollout_status_to_pb(status: RolloutStatus | str) -> int:
    return ROLLOUT_STATUS_TO_PB[_py_enum(RolloutStatus, status, "rollout status")]


def attempt_status_to_pb(status: AttemptStatus | str) -> int:
    return ATTEMPT_STATUS_TO_PB[_py_enum(AttemptStatus, status, "attempt status")]


def worker_status_to_pb(status: WorkerStatus | str) -> int:
    return WORKER_STATUS_TO_PB[_py_enum(WorkerStatus, status, "worker status")]


def mode_to_pb(mode: RolloutMode | str | None) -> int:
    if mode is None:
        return types_pb2.ROLLOUT_MODE_UNSPECIFIED
    return MODE_TO_PB[_py_enum(RolloutMode, mode, "rollout mode")]


# --- time ------------------------------------------------------------------------------------------


def ts_to_float(ts: timestamp_pb2.Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def opt_ts(message: Any, name: str) -> float | None:
    return ts_to_float(getattr(message, name)) if message.HasField(name) else None


def set_ts(ts: timestamp_pb2.Timestamp, seconds: float) -> None:
    ts.FromNanoseconds(round(seconds * 1e9))


# --- rollouts and attempts -------------------------------------------------------------------------


def config_to_pb(config: RolloutConfig | Mapping[str, Any] | None, target: types_pb2.RolloutConfig) -> None:
    if config is None:
        return
    if isinstance(config, Mapping):
        config = RolloutConfig(**config)
    if config.timeout_seconds is not None:
        target.timeout_seconds = float(config.timeout_seconds)
    if config.unresponsive_seconds is not None:
        target.unresponsive_seconds = float(config.unresponsive_seconds)
    target.max_attempts = int(config.max_attempts)
    target.retry_condition.extend(attempt_status_to_pb(s) for s in config.retry_condition)


def config_from_pb(pb: types_pb2.RolloutConfig) -> RolloutConfig:
    return RolloutConfig(
        timeout_seconds=pb.timeout_seconds if pb.HasField("timeout_seconds") else None,
        unresponsive_seconds=pb.unresponsive_seconds if pb.HasField("unresponsive_seconds") else None,
        max_attempts=max(1, pb.max_attempts),
        retry_condition=[ATTEMPT_STATUS_FROM_PB[s] for s in pb.retry_condition if s in ATTEMPT_STATUS_FROM_PB],
    )


def attempt_from_pb(pb: types_pb2.Attempt) -> Attempt:
    return Attempt(
        rollout_id=pb.rollout_id,
        attempt_id=pb.attempt_id,
        sequence_id=pb.sequence_id,
        start_time=ts_to_float(pb.start_time),
        end_time=opt_ts(pb, "end_time"),
        status=ATTEMPT_STATUS_FROM_PB.get(pb.status, AttemptStatus.PREPARING),
        worker_id=pb.worker_id or None,
        last_heartbeat_time=opt_ts(pb, "last_heartbeat_time"),
        metadata=from_struct(pb.metadata),
    )


def rollout_from_pb(pb: types_pb2.Rollout) -> Rollout:
    return Rollout(
        rollout_id=pb.rollout_id,
        input=from_value(pb.input),
        start_time=ts_to_float(pb.start_time),
        end_time=opt_ts(pb, "end_time"),
        mode=MODE_FROM_PB.get(pb.mode),
        resources_id=pb.resources_id or None,
        status=ROLLOUT_STATUS_FROM_PB.get(pb.status, RolloutStatus.QUEUING),
        config=config_from_pb(pb.config),
        metadata=from_struct(pb.metadata),
        attempt=attempt_from_pb(pb.attempt) if pb.HasField("attempt") else None,
        namespace=pb.namespace or "default",
        queue=pb.queue or "default",
        labels=dict(pb.labels),
        priority=pb.priority,
    )


def spec_to_pb(spec: RolloutSpec | Mapping[str, Any], target: store_pb2.RolloutSpec) -> None:
    if isinstance(spec, Mapping):
        spec = RolloutSpec(**spec)
    target.input.CopyFrom(to_value(spec.input, "input"))
    target.mode = mode_to_pb(spec.mode)
    if spec.resources_id:
        target.resources_id = spec.resources_id
    if spec.config is not None:
        config_to_pb(spec.config, target.config)
    if spec.metadata:
        target.metadata.CopyFrom(to_struct(spec.metadata))
    if spec.rollout_id:
        target.rollout_id = spec.rollout_id
    if spec.queue:
        target.queue = spec.queue
    if spec.labels:
        target.labels.update(spec.labels)
    target.priority = spec.priority


def event_from_pb(pb: types_pb2.RolloutEvent) -> RolloutEvent:
    return RolloutEvent(
        event_id=pb.event_id,
        rollout_id=pb.rollout_id,
        old_status=ROLLOUT_STATUS_FROM_PB.get(pb.old_status),
        new_status=ROLLOUT_STATUS_FROM_PB[pb.new_status],
        time=ts_to_float(pb.time),
        rollout=rollout_from_pb(pb.rollout),
    )


def worker_from_pb(pb: types_pb2.Worker) -> Worker:
    return Worker(
        worker_id=pb.worker_id,
        status=WORKER_STATUS_FROM_PB.get(pb.status, WorkerStatus.UNKNOWN),
        last_heartbeat_time=opt_ts(pb, "last_heartbeat_time"),
        current_rollout_id=pb.current_rollout_id or None,
        current_attempt_id=pb.current_attempt_id or None,
        last_dequeue_time=opt_ts(pb, "last_dequeue_time"),
        last_busy_time=opt_ts(pb, "last_busy_time"),
        last_idle_time=opt_ts(pb, "last_idle_time"),
        heartbeat_stats=from_struct(pb.heartbeat_stats),
        namespace=pb.namespace or "default",
        queues=list(pb.queues),
        label_selector=pb.label_selector,
    )


# --- resources -------------------------------------------------------------------------------------


def resource_to_pb(resource: Resource | Mapping[str, Any], target: resources_pb2.Resource, name: str) -> None:
    if isinstance(resource, Mapping):
        resource = resource_from_dict(resource, name)
    if isinstance(resource, (LLM, ProxyLLM)):
        llm = target.proxy_llm if isinstance(resource, ProxyLLM) else target.llm
        llm.endpoint = resource.endpoint
        llm.model = resource.model
        llm.api_key = resource.api_key or ""
        llm.sampling_parameters.CopyFrom(to_struct(resource.sampling_parameters, f"{name}.sampling_parameters"))
    elif isinstance(resource, PromptTemplate):
        target.prompt_template.template = resource.template
        target.prompt_template.engine = ENGINE_TO_PB[resource.engine]
    elif isinstance(resource, CustomResource):
        target.custom.type = resource.type
        target.custom.value.CopyFrom(to_value(resource.value, f"{name}.value"))
    else:
        raise InvalidArgumentError(
            f"resource {name!r} is a {type(resource).__name__}; use LLM, ProxyLLM, PromptTemplate or CustomResource"
        )


_RESOURCE_TYPES: dict[str, type] = {
    "llm": LLM,
    "proxy_llm": ProxyLLM,
    "prompt_template": PromptTemplate,
    "custom": CustomResource,
}


def resource_from_dict(data: Mapping[str, Any], name: str) -> Resource:
    """Build a resource from ``{"resource_type": "llm", ...fields}`` (the original's dict form)."""
    data = dict(data)
    kind = data.pop("resource_type", None)
    cls = _RESOURCE_TYPES.get(str(kind))
    if cls is None:
        raise InvalidArgumentError(
            f"resource {name!r} has resource_type {kind!r}; use one of {', '.join(_RESOURCE_TYPES)}"
        )
    try:
        return cls(**data)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise InvalidArgumentError(f"resource {name!r}: {exc}") from None


def resource_from_pb(pb: resources_pb2.Resource) -> Resource:
    kind = pb.WhichOneof("kind")
    if kind in ("llm", "proxy_llm"):
        llm = getattr(pb, kind)
        cls = ProxyLLM if kind == "proxy_llm" else LLM
        return cls(
            endpoint=llm.endpoint,
            model=llm.model,
            api_key=llm.api_key or None,
            sampling_parameters=from_struct(llm.sampling_parameters),
        )
    if kind == "prompt_template":
        return PromptTemplate(template=pb.prompt_template.template, engine=ENGINE_FROM_PB[pb.prompt_template.engine])
    if kind == "custom":
        return CustomResource(type=pb.custom.type, value=from_value(pb.custom.value))
    raise InvalidArgumentError("a resource has no kind set; set llm, proxy_llm, prompt_template or custom")


def resources_to_pb(resources: Mapping[str, Resource | Mapping[str, Any]], target: Any) -> None:
    """Fill a ``map<string, Resource>`` field."""
    for name, resource in resources.items():
        resource_to_pb(resource, target[name], name)


def resources_update_from_pb(pb: resources_pb2.ResourcesUpdate) -> ResourcesUpdate:
    return ResourcesUpdate(
        resources_id=pb.resources_id,
        version=pb.version,
        create_time=ts_to_float(pb.create_time),
        update_time=ts_to_float(pb.update_time),
        resources={name: resource_from_pb(r) for name, r in pb.resources.items()},
        namespace=pb.namespace or "default",
    )
