import datetime

from agl_core.proto import resources_pb2 as _resources_pb2
from agl_core.proto import trace_pb2 as _trace_pb2
from agl_core.proto import types_pb2 as _types_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RolloutSpec(_message.Message):
    __slots__ = ("rollout_id", "input", "mode", "resources_id", "config", "metadata", "queue", "labels", "priority")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    input: _struct_pb2.Value
    mode: _types_pb2.RolloutMode
    resources_id: str
    config: _types_pb2.RolloutConfig
    metadata: _struct_pb2.Struct
    queue: str
    labels: _containers.ScalarMap[str, str]
    priority: int
    def __init__(self, rollout_id: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., mode: _Optional[_Union[_types_pb2.RolloutMode, str]] = ..., resources_id: _Optional[str] = ..., config: _Optional[_Union[_types_pb2.RolloutConfig, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., queue: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., priority: _Optional[int] = ...) -> None: ...

class StartRolloutRequest(_message.Message):
    __slots__ = ("rollout", "worker_id", "namespace")
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    rollout: RolloutSpec
    worker_id: str
    namespace: str
    def __init__(self, rollout: _Optional[_Union[RolloutSpec, _Mapping]] = ..., worker_id: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class StartRolloutResponse(_message.Message):
    __slots__ = ("rollout",)
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    rollout: _types_pb2.Rollout
    def __init__(self, rollout: _Optional[_Union[_types_pb2.Rollout, _Mapping]] = ...) -> None: ...

class EnqueueRolloutsRequest(_message.Message):
    __slots__ = ("rollouts", "namespace")
    ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    rollouts: _containers.RepeatedCompositeFieldContainer[RolloutSpec]
    namespace: str
    def __init__(self, rollouts: _Optional[_Iterable[_Union[RolloutSpec, _Mapping]]] = ..., namespace: _Optional[str] = ...) -> None: ...

class EnqueueRolloutsResponse(_message.Message):
    __slots__ = ("rollouts", "errors")
    ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    rollouts: _containers.RepeatedCompositeFieldContainer[_types_pb2.Rollout]
    errors: _containers.RepeatedCompositeFieldContainer[_types_pb2.ItemError]
    def __init__(self, rollouts: _Optional[_Iterable[_Union[_types_pb2.Rollout, _Mapping]]] = ..., errors: _Optional[_Iterable[_Union[_types_pb2.ItemError, _Mapping]]] = ...) -> None: ...

class DequeueRolloutRequest(_message.Message):
    __slots__ = ("worker_id", "limit", "wait", "namespace", "queues", "label_selector", "running")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    limit: int
    wait: _duration_pb2.Duration
    namespace: str
    queues: _containers.RepeatedScalarFieldContainer[str]
    label_selector: str
    running: bool
    def __init__(self, worker_id: _Optional[str] = ..., limit: _Optional[int] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., namespace: _Optional[str] = ..., queues: _Optional[_Iterable[str]] = ..., label_selector: _Optional[str] = ..., running: _Optional[bool] = ...) -> None: ...

class DequeueRolloutResponse(_message.Message):
    __slots__ = ("rollouts",)
    ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    rollouts: _containers.RepeatedCompositeFieldContainer[_types_pb2.Rollout]
    def __init__(self, rollouts: _Optional[_Iterable[_Union[_types_pb2.Rollout, _Mapping]]] = ...) -> None: ...

class StartAttemptRequest(_message.Message):
    __slots__ = ("rollout_id", "worker_id")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    worker_id: str
    def __init__(self, rollout_id: _Optional[str] = ..., worker_id: _Optional[str] = ...) -> None: ...

class StartAttemptResponse(_message.Message):
    __slots__ = ("rollout",)
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    rollout: _types_pb2.Rollout
    def __init__(self, rollout: _Optional[_Union[_types_pb2.Rollout, _Mapping]] = ...) -> None: ...

class GetRolloutRequest(_message.Message):
    __slots__ = ("rollout_id",)
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    def __init__(self, rollout_id: _Optional[str] = ...) -> None: ...

class GetRolloutResponse(_message.Message):
    __slots__ = ("rollout",)
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    rollout: _types_pb2.Rollout
    def __init__(self, rollout: _Optional[_Union[_types_pb2.Rollout, _Mapping]] = ...) -> None: ...

class QueryRolloutsRequest(_message.Message):
    __slots__ = ("status_in", "rollout_id_in", "rollout_id_contains", "mode", "sort_by", "order", "limit", "offset", "filter_logic", "status_filter", "namespace", "all_namespaces")
    STATUS_IN_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_IN_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SORT_BY_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FILTER_LOGIC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FILTER_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ALL_NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    status_in: _containers.RepeatedScalarFieldContainer[_types_pb2.RolloutStatus]
    rollout_id_in: _containers.RepeatedScalarFieldContainer[str]
    rollout_id_contains: str
    mode: _types_pb2.RolloutMode
    sort_by: str
    order: _types_pb2.SortOrder
    limit: int
    offset: int
    filter_logic: _types_pb2.FilterLogic
    status_filter: RolloutStatusFilter
    namespace: str
    all_namespaces: bool
    def __init__(self, status_in: _Optional[_Iterable[_Union[_types_pb2.RolloutStatus, str]]] = ..., rollout_id_in: _Optional[_Iterable[str]] = ..., rollout_id_contains: _Optional[str] = ..., mode: _Optional[_Union[_types_pb2.RolloutMode, str]] = ..., sort_by: _Optional[str] = ..., order: _Optional[_Union[_types_pb2.SortOrder, str]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., filter_logic: _Optional[_Union[_types_pb2.FilterLogic, str]] = ..., status_filter: _Optional[_Union[RolloutStatusFilter, _Mapping]] = ..., namespace: _Optional[str] = ..., all_namespaces: _Optional[bool] = ...) -> None: ...

class RolloutStatusFilter(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[_types_pb2.RolloutStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[_types_pb2.RolloutStatus, str]]] = ...) -> None: ...

class QueryRolloutsResponse(_message.Message):
    __slots__ = ("rollouts", "total")
    ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    rollouts: _containers.RepeatedCompositeFieldContainer[_types_pb2.Rollout]
    total: int
    def __init__(self, rollouts: _Optional[_Iterable[_Union[_types_pb2.Rollout, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class QueryAttemptsRequest(_message.Message):
    __slots__ = ("rollout_id", "order", "limit", "offset")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    order: _types_pb2.SortOrder
    limit: int
    offset: int
    def __init__(self, rollout_id: _Optional[str] = ..., order: _Optional[_Union[_types_pb2.SortOrder, str]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class QueryAttemptsResponse(_message.Message):
    __slots__ = ("attempts", "total")
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    attempts: _containers.RepeatedCompositeFieldContainer[_types_pb2.Attempt]
    total: int
    def __init__(self, attempts: _Optional[_Iterable[_Union[_types_pb2.Attempt, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class UpdateRolloutRequest(_message.Message):
    __slots__ = ("rollout_id", "status", "input", "mode", "resources_id", "config", "metadata")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    status: _types_pb2.RolloutStatus
    input: _struct_pb2.Value
    mode: _types_pb2.RolloutMode
    resources_id: str
    config: _types_pb2.RolloutConfig
    metadata: _struct_pb2.Struct
    def __init__(self, rollout_id: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.RolloutStatus, str]] = ..., input: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., mode: _Optional[_Union[_types_pb2.RolloutMode, str]] = ..., resources_id: _Optional[str] = ..., config: _Optional[_Union[_types_pb2.RolloutConfig, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class UpdateRolloutResponse(_message.Message):
    __slots__ = ("rollout",)
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    rollout: _types_pb2.Rollout
    def __init__(self, rollout: _Optional[_Union[_types_pb2.Rollout, _Mapping]] = ...) -> None: ...

class UpdateAttemptRequest(_message.Message):
    __slots__ = ("rollout_id", "attempt_id", "status", "worker_id", "last_heartbeat_time", "metadata")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    attempt_id: str
    status: _types_pb2.AttemptStatus
    worker_id: str
    last_heartbeat_time: _timestamp_pb2.Timestamp
    metadata: _struct_pb2.Struct
    def __init__(self, rollout_id: _Optional[str] = ..., attempt_id: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.AttemptStatus, str]] = ..., worker_id: _Optional[str] = ..., last_heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class UpdateAttemptResponse(_message.Message):
    __slots__ = ("attempt",)
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    attempt: _types_pb2.Attempt
    def __init__(self, attempt: _Optional[_Union[_types_pb2.Attempt, _Mapping]] = ...) -> None: ...

class AddResourcesRequest(_message.Message):
    __slots__ = ("resources", "resources_id", "namespace")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _resources_pb2.Resource
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_resources_pb2.Resource, _Mapping]] = ...) -> None: ...
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.MessageMap[str, _resources_pb2.Resource]
    resources_id: str
    namespace: str
    def __init__(self, resources: _Optional[_Mapping[str, _resources_pb2.Resource]] = ..., resources_id: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class AddResourcesResponse(_message.Message):
    __slots__ = ("resources",)
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    resources: _resources_pb2.ResourcesUpdate
    def __init__(self, resources: _Optional[_Union[_resources_pb2.ResourcesUpdate, _Mapping]] = ...) -> None: ...

class UpdateResourcesRequest(_message.Message):
    __slots__ = ("resources_id", "resources", "namespace")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _resources_pb2.Resource
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_resources_pb2.Resource, _Mapping]] = ...) -> None: ...
    RESOURCES_ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    resources_id: str
    resources: _containers.MessageMap[str, _resources_pb2.Resource]
    namespace: str
    def __init__(self, resources_id: _Optional[str] = ..., resources: _Optional[_Mapping[str, _resources_pb2.Resource]] = ..., namespace: _Optional[str] = ...) -> None: ...

class UpdateResourcesResponse(_message.Message):
    __slots__ = ("resources",)
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    resources: _resources_pb2.ResourcesUpdate
    def __init__(self, resources: _Optional[_Union[_resources_pb2.ResourcesUpdate, _Mapping]] = ...) -> None: ...

class GetResourcesRequest(_message.Message):
    __slots__ = ("resources_id", "namespace")
    RESOURCES_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    resources_id: str
    namespace: str
    def __init__(self, resources_id: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class GetResourcesResponse(_message.Message):
    __slots__ = ("resources",)
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    resources: _resources_pb2.ResourcesUpdate
    def __init__(self, resources: _Optional[_Union[_resources_pb2.ResourcesUpdate, _Mapping]] = ...) -> None: ...

class QueryResourcesRequest(_message.Message):
    __slots__ = ("resources_id_in", "sort_by", "order", "limit", "offset", "resources_id_contains", "filter_logic", "namespace", "all_namespaces")
    RESOURCES_ID_IN_FIELD_NUMBER: _ClassVar[int]
    SORT_BY_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_ID_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    FILTER_LOGIC_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ALL_NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    resources_id_in: _containers.RepeatedScalarFieldContainer[str]
    sort_by: str
    order: _types_pb2.SortOrder
    limit: int
    offset: int
    resources_id_contains: str
    filter_logic: _types_pb2.FilterLogic
    namespace: str
    all_namespaces: bool
    def __init__(self, resources_id_in: _Optional[_Iterable[str]] = ..., sort_by: _Optional[str] = ..., order: _Optional[_Union[_types_pb2.SortOrder, str]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., resources_id_contains: _Optional[str] = ..., filter_logic: _Optional[_Union[_types_pb2.FilterLogic, str]] = ..., namespace: _Optional[str] = ..., all_namespaces: _Optional[bool] = ...) -> None: ...

class QueryResourcesResponse(_message.Message):
    __slots__ = ("resources", "total")
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.RepeatedCompositeFieldContainer[_resources_pb2.ResourcesUpdate]
    total: int
    def __init__(self, resources: _Optional[_Iterable[_Union[_resources_pb2.ResourcesUpdate, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class IngestSpansRequest(_message.Message):
    __slots__ = ("batch_id", "spans")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    spans: _containers.RepeatedCompositeFieldContainer[_trace_pb2.Span]
    def __init__(self, batch_id: _Optional[int] = ..., spans: _Optional[_Iterable[_Union[_trace_pb2.Span, _Mapping]]] = ...) -> None: ...

class IngestSpansResponse(_message.Message):
    __slots__ = ("batch_id", "accepted", "duplicate_indices", "rejected")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_INDICES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    accepted: int
    duplicate_indices: _containers.RepeatedScalarFieldContainer[int]
    rejected: _containers.RepeatedCompositeFieldContainer[_types_pb2.ItemError]
    def __init__(self, batch_id: _Optional[int] = ..., accepted: _Optional[int] = ..., duplicate_indices: _Optional[_Iterable[int]] = ..., rejected: _Optional[_Iterable[_Union[_types_pb2.ItemError, _Mapping]]] = ...) -> None: ...

class QuerySpansRequest(_message.Message):
    __slots__ = ("rollout_id", "attempt_id", "after_sequence_id", "limit", "trace_id", "span_id", "parent_span_id", "name", "name_contains", "filter_logic", "offset", "sort_by", "order", "include_total", "rollout_ids")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    FILTER_LOGIC_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SORT_BY_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_IDS_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    attempt_id: str
    after_sequence_id: int
    limit: int
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    name: str
    name_contains: str
    filter_logic: _types_pb2.FilterLogic
    offset: int
    sort_by: str
    order: _types_pb2.SortOrder
    include_total: bool
    rollout_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, rollout_id: _Optional[str] = ..., attempt_id: _Optional[str] = ..., after_sequence_id: _Optional[int] = ..., limit: _Optional[int] = ..., trace_id: _Optional[bytes] = ..., span_id: _Optional[bytes] = ..., parent_span_id: _Optional[bytes] = ..., name: _Optional[str] = ..., name_contains: _Optional[str] = ..., filter_logic: _Optional[_Union[_types_pb2.FilterLogic, str]] = ..., offset: _Optional[int] = ..., sort_by: _Optional[str] = ..., order: _Optional[_Union[_types_pb2.SortOrder, str]] = ..., include_total: _Optional[bool] = ..., rollout_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class QuerySpansResponse(_message.Message):
    __slots__ = ("spans", "total")
    SPANS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    spans: _containers.RepeatedCompositeFieldContainer[_trace_pb2.Span]
    total: int
    def __init__(self, spans: _Optional[_Iterable[_Union[_trace_pb2.Span, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class NextSequenceIdsRequest(_message.Message):
    __slots__ = ("rollout_id", "count")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    count: int
    def __init__(self, rollout_id: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class NextSequenceIdsResponse(_message.Message):
    __slots__ = ("first", "count")
    FIRST_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    first: int
    count: int
    def __init__(self, first: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class WaitForRolloutsRequest(_message.Message):
    __slots__ = ("rollout_ids", "timeout")
    ROLLOUT_IDS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    rollout_ids: _containers.RepeatedScalarFieldContainer[str]
    timeout: _duration_pb2.Duration
    def __init__(self, rollout_ids: _Optional[_Iterable[str]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class WaitForRolloutsResponse(_message.Message):
    __slots__ = ("rollouts", "pending_rollout_ids", "unknown_rollout_ids")
    ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    PENDING_ROLLOUT_IDS_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_ROLLOUT_IDS_FIELD_NUMBER: _ClassVar[int]
    rollouts: _containers.RepeatedCompositeFieldContainer[_types_pb2.Rollout]
    pending_rollout_ids: _containers.RepeatedScalarFieldContainer[str]
    unknown_rollout_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, rollouts: _Optional[_Iterable[_Union[_types_pb2.Rollout, _Mapping]]] = ..., pending_rollout_ids: _Optional[_Iterable[str]] = ..., unknown_rollout_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchRolloutsRequest(_message.Message):
    __slots__ = ("rollout_ids", "status_in", "after_event_id", "namespace", "all_namespaces")
    ROLLOUT_IDS_FIELD_NUMBER: _ClassVar[int]
    STATUS_IN_FIELD_NUMBER: _ClassVar[int]
    AFTER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ALL_NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    rollout_ids: _containers.RepeatedScalarFieldContainer[str]
    status_in: _containers.RepeatedScalarFieldContainer[_types_pb2.RolloutStatus]
    after_event_id: int
    namespace: str
    all_namespaces: bool
    def __init__(self, rollout_ids: _Optional[_Iterable[str]] = ..., status_in: _Optional[_Iterable[_Union[_types_pb2.RolloutStatus, str]]] = ..., after_event_id: _Optional[int] = ..., namespace: _Optional[str] = ..., all_namespaces: _Optional[bool] = ...) -> None: ...

class WatchRolloutsResponse(_message.Message):
    __slots__ = ("events", "last_event_id")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_types_pb2.RolloutEvent]
    last_event_id: int
    def __init__(self, events: _Optional[_Iterable[_Union[_types_pb2.RolloutEvent, _Mapping]]] = ..., last_event_id: _Optional[int] = ...) -> None: ...

class QueryWorkersRequest(_message.Message):
    __slots__ = ("status_in", "worker_id_in", "sort_by", "order", "limit", "offset", "worker_id_contains", "filter_logic", "status_filter", "namespace", "all_namespaces")
    STATUS_IN_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_IN_FIELD_NUMBER: _ClassVar[int]
    SORT_BY_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    FILTER_LOGIC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FILTER_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ALL_NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    status_in: _containers.RepeatedScalarFieldContainer[_types_pb2.WorkerStatus]
    worker_id_in: _containers.RepeatedScalarFieldContainer[str]
    sort_by: str
    order: _types_pb2.SortOrder
    limit: int
    offset: int
    worker_id_contains: str
    filter_logic: _types_pb2.FilterLogic
    status_filter: WorkerStatusFilter
    namespace: str
    all_namespaces: bool
    def __init__(self, status_in: _Optional[_Iterable[_Union[_types_pb2.WorkerStatus, str]]] = ..., worker_id_in: _Optional[_Iterable[str]] = ..., sort_by: _Optional[str] = ..., order: _Optional[_Union[_types_pb2.SortOrder, str]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., worker_id_contains: _Optional[str] = ..., filter_logic: _Optional[_Union[_types_pb2.FilterLogic, str]] = ..., status_filter: _Optional[_Union[WorkerStatusFilter, _Mapping]] = ..., namespace: _Optional[str] = ..., all_namespaces: _Optional[bool] = ...) -> None: ...

class WorkerStatusFilter(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[_types_pb2.WorkerStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[_types_pb2.WorkerStatus, str]]] = ...) -> None: ...

class QueryWorkersResponse(_message.Message):
    __slots__ = ("workers", "total")
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[_types_pb2.Worker]
    total: int
    def __init__(self, workers: _Optional[_Iterable[_Union[_types_pb2.Worker, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class GetWorkerRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class GetWorkerResponse(_message.Message):
    __slots__ = ("worker",)
    WORKER_FIELD_NUMBER: _ClassVar[int]
    worker: _types_pb2.Worker
    def __init__(self, worker: _Optional[_Union[_types_pb2.Worker, _Mapping]] = ...) -> None: ...

class UpdateWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "heartbeat_stats", "status")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_STATS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    heartbeat_stats: _struct_pb2.Struct
    status: _types_pb2.WorkerStatus
    def __init__(self, worker_id: _Optional[str] = ..., heartbeat_stats: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., status: _Optional[_Union[_types_pb2.WorkerStatus, str]] = ...) -> None: ...

class UpdateWorkerResponse(_message.Message):
    __slots__ = ("worker",)
    WORKER_FIELD_NUMBER: _ClassVar[int]
    worker: _types_pb2.Worker
    def __init__(self, worker: _Optional[_Union[_types_pb2.Worker, _Mapping]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("rollouts_by_status", "rollouts", "attempts", "spans", "resources", "workers", "queue_length", "data_bytes", "map_size_bytes", "last_event_id", "start_time", "backend", "file_bytes", "used_pages", "used_bytes", "free_bytes", "page_size")
    class RolloutsByStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ROLLOUTS_BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    DATA_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAP_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    FILE_BYTES_FIELD_NUMBER: _ClassVar[int]
    USED_PAGES_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    rollouts_by_status: _containers.ScalarMap[str, int]
    rollouts: int
    attempts: int
    spans: int
    resources: int
    workers: int
    queue_length: int
    data_bytes: int
    map_size_bytes: int
    last_event_id: int
    start_time: _timestamp_pb2.Timestamp
    backend: str
    file_bytes: int
    used_pages: int
    used_bytes: int
    free_bytes: int
    page_size: int
    def __init__(self, rollouts_by_status: _Optional[_Mapping[str, int]] = ..., rollouts: _Optional[int] = ..., attempts: _Optional[int] = ..., spans: _Optional[int] = ..., resources: _Optional[int] = ..., workers: _Optional[int] = ..., queue_length: _Optional[int] = ..., data_bytes: _Optional[int] = ..., map_size_bytes: _Optional[int] = ..., last_event_id: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., backend: _Optional[str] = ..., file_bytes: _Optional[int] = ..., used_pages: _Optional[int] = ..., used_bytes: _Optional[int] = ..., free_bytes: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class DeleteRolloutsRequest(_message.Message):
    __slots__ = ("rollout_ids", "ended_before", "older_than", "status_in", "force", "dry_run")
    ROLLOUT_IDS_FIELD_NUMBER: _ClassVar[int]
    ENDED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    OLDER_THAN_FIELD_NUMBER: _ClassVar[int]
    STATUS_IN_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    rollout_ids: _containers.RepeatedScalarFieldContainer[str]
    ended_before: _timestamp_pb2.Timestamp
    older_than: _duration_pb2.Duration
    status_in: _containers.RepeatedScalarFieldContainer[_types_pb2.RolloutStatus]
    force: bool
    dry_run: bool
    def __init__(self, rollout_ids: _Optional[_Iterable[str]] = ..., ended_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., older_than: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., status_in: _Optional[_Iterable[_Union[_types_pb2.RolloutStatus, str]]] = ..., force: _Optional[bool] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class DeleteRolloutsResponse(_message.Message):
    __slots__ = ("deleted_rollouts", "deleted_attempts", "deleted_spans", "not_found_rollout_ids", "skipped_active")
    DELETED_ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    DELETED_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DELETED_SPANS_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_ROLLOUT_IDS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    deleted_rollouts: int
    deleted_attempts: int
    deleted_spans: int
    not_found_rollout_ids: _containers.RepeatedScalarFieldContainer[str]
    skipped_active: int
    def __init__(self, deleted_rollouts: _Optional[int] = ..., deleted_attempts: _Optional[int] = ..., deleted_spans: _Optional[int] = ..., not_found_rollout_ids: _Optional[_Iterable[str]] = ..., skipped_active: _Optional[int] = ...) -> None: ...

class BackupStoreRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BackupStoreResponse(_message.Message):
    __slots__ = ("data", "done", "total_bytes", "sha256")
    DATA_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    done: bool
    total_bytes: int
    sha256: bytes
    def __init__(self, data: _Optional[bytes] = ..., done: _Optional[bool] = ..., total_bytes: _Optional[int] = ..., sha256: _Optional[bytes] = ...) -> None: ...
