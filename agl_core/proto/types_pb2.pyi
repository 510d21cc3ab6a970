import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RolloutStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLLOUT_STATUS_UNSPECIFIED: _ClassVar[RolloutStatus]
    ROLLOUT_STATUS_QUEUING: _ClassVar[RolloutStatus]
    ROLLOUT_STATUS_PREPARING: _ClassVar[RolloutStatus]
    ROLLOUT_STATUS_RUNNING: _ClassVar[RolloutStatus]
    ROLLOUT_STATUS_FAILED: _ClassVar[RolloutStatus]
    ROLLOUT_STATUS_SUCCEEDED: _ClassVar[RolloutStatus]
    ROLLOUT_STATUS_CANCELLED: _ClassVar[RolloutStatus]
    ROLLOUT_STATUS_REQUEUING: _ClassVar[RolloutStatus]

class AttemptStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTEMPT_STATUS_UNSPECIFIED: _ClassVar[AttemptStatus]
    ATTEMPT_STATUS_PREPARING: _ClassVar[AttemptStatus]
    ATTEMPT_STATUS_RUNNING: _ClassVar[AttemptStatus]
    ATTEMPT_STATUS_FAILED: _ClassVar[AttemptStatus]
    ATTEMPT_STATUS_SUCCEEDED: _ClassVar[AttemptStatus]
    ATTEMPT_STATUS_UNRESPONSIVE: _ClassVar[AttemptStatus]
    ATTEMPT_STATUS_TIMEOUT: _ClassVar[AttemptStatus]

class RolloutMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLLOUT_MODE_UNSPECIFIED: _ClassVar[RolloutMode]
    ROLLOUT_MODE_TRAIN: _ClassVar[RolloutMode]
    ROLLOUT_MODE_VAL: _ClassVar[RolloutMode]
    ROLLOUT_MODE_TEST: _ClassVar[RolloutMode]

class WorkerStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_STATUS_UNSPECIFIED: _ClassVar[WorkerStatus]
    WORKER_STATUS_IDLE: _ClassVar[WorkerStatus]
    WORKER_STATUS_BUSY: _ClassVar[WorkerStatus]
    WORKER_STATUS_UNKNOWN: _ClassVar[WorkerStatus]

class FilterLogic(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILTER_LOGIC_UNSPECIFIED: _ClassVar[FilterLogic]
    FILTER_LOGIC_AND: _ClassVar[FilterLogic]
    FILTER_LOGIC_OR: _ClassVar[FilterLogic]

class SortOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SORT_ORDER_UNSPECIFIED: _ClassVar[SortOrder]
    SORT_ORDER_ASC: _ClassVar[SortOrder]
    SORT_ORDER_DESC: _ClassVar[SortOrder]
ROLLOUT_STATUS_UNSPECIFIED: RolloutStatus
ROLLOUT_STATUS_QUEUING: RolloutStatus
ROLLOUT_STATUS_PREPARING: RolloutStatus
ROLLOUT_STATUS_RUNNING: RolloutStatus
ROLLOUT_STATUS_FAILED: RolloutStatus
ROLLOUT_STATUS_SUCCEEDED: RolloutStatus
ROLLOUT_STATUS_CANCELLED: RolloutStatus
ROLLOUT_STATUS_REQUEUING: RolloutStatus
ATTEMPT_STATUS_UNSPECIFIED: AttemptStatus
ATTEMPT_STATUS_PREPARING: AttemptStatus
ATTEMPT_STATUS_RUNNING: AttemptStatus
ATTEMPT_STATUS_FAILED: AttemptStatus
ATTEMPT_STATUS_SUCCEEDED: AttemptStatus
ATTEMPT_STATUS_UNRESPONSIVE: AttemptStatus
ATTEMPT_STATUS_TIMEOUT: AttemptStatus
ROLLOUT_MODE_UNSPECIFIED: RolloutMode
ROLLOUT_MODE_TRAIN: RolloutMode
ROLLOUT_MODE_VAL: RolloutMode
ROLLOUT_MODE_TEST: RolloutMode
WORKER_STATUS_UNSPECIFIED: WorkerStatus
WORKER_STATUS_IDLE: WorkerStatus
WORKER_STATUS_BUSY: WorkerStatus
WORKER_STATUS_UNKNOWN: WorkerStatus
FILTER_LOGIC_UNSPECIFIED: FilterLogic
FILTER_LOGIC_AND: FilterLogic
FILTER_LOGIC_OR: FilterLogic
SORT_ORDER_UNSPECIFIED: SortOrder
SORT_ORDER_ASC: SortOrder
SORT_ORDER_DESC: SortOrder

class RolloutConfig(_message.Message):
    __slots__ = ("timeout_seconds", "unresponsive_seconds", "max_attempts", "retry_condition")
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    UNRESPONSIVE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    RETRY_CONDITION_FIELD_NUMBER: _ClassVar[int]
    timeout_seconds: float
    unresponsive_seconds: float
    max_attempts: int
    retry_condition: _containers.RepeatedScalarFieldContainer[AttemptStatus]
    def __init__(self, timeout_seconds: _Optional[float] = ..., unresponsive_seconds: _Optional[float] = ..., max_attempts: _Optional[int] = ..., retry_condition: _Optional[_Iterable[_Union[AttemptStatus, str]]] = ...) -> None: ...

class Attempt(_message.Message):
    __slots__ = ("rollout_id", "attempt_id", "sequence_id", "start_time", "end_time", "status", "worker_id", "last_heartbeat_time", "metadata")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    attempt_id: str
    sequence_id: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    status: AttemptStatus
    worker_id: str
    last_heartbeat_time: _timestamp_pb2.Timestamp
    metadata: _struct_pb2.Struct
    def __init__(self, rollout_id: _Optional[str] = ..., attempt_id: _Optional[str] = ..., sequence_id: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[AttemptStatus, str]] = ..., worker_id: _Optional[str] = ..., last_heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Rollout(_message.Message):
    __slots__ = ("rollout_id", "input", "start_time", "end_time", "mode", "resources_id", "status", "config", "metadata", "attempt", "namespace", "queue", "labels", "priority")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    input: _struct_pb2.Value
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    mode: RolloutMode
    resources_id: str
    status: RolloutStatus
    config: RolloutConfig
    metadata: _struct_pb2.Struct
    attempt: Attempt
    namespace: str
    queue: str
    labels: _containers.ScalarMap[str, str]
    priority: int
    def __init__(self, rollout_id: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., mode: _Optional[_Union[RolloutMode, str]] = ..., resources_id: _Optional[str] = ..., status: _Optional[_Union[RolloutStatus, str]] = ..., config: _Optional[_Union[RolloutConfig, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., attempt: _Optional[_Union[Attempt, _Mapping]] = ..., namespace: _Optional[str] = ..., queue: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., priority: _Optional[int] = ...) -> None: ...

class Worker(_message.Message):
    __slots__ = ("worker_id", "status", "last_heartbeat_time", "current_rollout_id", "current_attempt_id", "last_dequeue_time", "last_busy_time", "last_idle_time", "heartbeat_stats", "namespace", "queues", "label_selector")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_DEQUEUE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_BUSY_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_IDLE_TIME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_STATS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    status: WorkerStatus
    last_heartbeat_time: _timestamp_pb2.Timestamp
    current_rollout_id: str
    current_attempt_id: str
    last_dequeue_time: _timestamp_pb2.Timestamp
    last_busy_time: _timestamp_pb2.Timestamp
    last_idle_time: _timestamp_pb2.Timestamp
    heartbeat_stats: _struct_pb2.Struct
    namespace: str
    queues: _containers.RepeatedScalarFieldContainer[str]
    label_selector: str
    def __init__(self, worker_id: _Optional[str] = ..., status: _Optional[_Union[WorkerStatus, str]] = ..., last_heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., current_rollout_id: _Optional[str] = ..., current_attempt_id: _Optional[str] = ..., last_dequeue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_busy_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_idle_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_stats: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., namespace: _Optional[str] = ..., queues: _Optional[_Iterable[str]] = ..., label_selector: _Optional[str] = ...) -> None: ...

class RolloutEvent(_message.Message):
    __slots__ = ("event_id", "rollout_id", "old_status", "new_status", "time", "rollout")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_STATUS_FIELD_NUMBER: _ClassVar[int]
    NEW_STATUS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    rollout_id: str
    old_status: RolloutStatus
    new_status: RolloutStatus
    time: _timestamp_pb2.Timestamp
    rollout: Rollout
    def __init__(self, event_id: _Optional[int] = ..., rollout_id: _Optional[str] = ..., old_status: _Optional[_Union[RolloutStatus, str]] = ..., new_status: _Optional[_Union[RolloutStatus, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rollout: _Optional[_Union[Rollout, _Mapping]] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("index", "code", "message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    code: int
    message: str
    def __init__(self, index: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...
