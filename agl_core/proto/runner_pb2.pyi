import datetime

from agl_core.proto import resources_pb2 as _resources_pb2
from agl_core.proto import types_pb2 as _types_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkRequest(_message.Message):
    __slots__ = ("hello", "ready", "report", "heartbeat")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    hello: WorkerHello
    ready: WorkerReady
    report: AttemptReport
    heartbeat: WorkerHeartbeat
    def __init__(self, hello: _Optional[_Union[WorkerHello, _Mapping]] = ..., ready: _Optional[_Union[WorkerReady, _Mapping]] = ..., report: _Optional[_Union[AttemptReport, _Mapping]] = ..., heartbeat: _Optional[_Union[WorkerHeartbeat, _Mapping]] = ...) -> None: ...

class WorkResponse(_message.Message):
    __slots__ = ("welcome", "assignment", "report_ack")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    REPORT_ACK_FIELD_NUMBER: _ClassVar[int]
    welcome: WorkerWelcome
    assignment: AttemptAssignment
    report_ack: AttemptReportAck
    def __init__(self, welcome: _Optional[_Union[WorkerWelcome, _Mapping]] = ..., assignment: _Optional[_Union[AttemptAssignment, _Mapping]] = ..., report_ack: _Optional[_Union[AttemptReportAck, _Mapping]] = ...) -> None: ...

class AttemptRef(_message.Message):
    __slots__ = ("rollout_id", "attempt_id")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    attempt_id: str
    def __init__(self, rollout_id: _Optional[str] = ..., attempt_id: _Optional[str] = ...) -> None: ...

class WorkerHello(_message.Message):
    __slots__ = ("worker_id", "capacity", "heartbeat_interval", "active_attempts", "info", "namespace", "queues", "label_selector", "start_on_assignment")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    START_ON_ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    capacity: int
    heartbeat_interval: _duration_pb2.Duration
    active_attempts: _containers.RepeatedCompositeFieldContainer[AttemptRef]
    info: _struct_pb2.Struct
    namespace: str
    queues: _containers.RepeatedScalarFieldContainer[str]
    label_selector: str
    start_on_assignment: bool
    def __init__(self, worker_id: _Optional[str] = ..., capacity: _Optional[int] = ..., heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., active_attempts: _Optional[_Iterable[_Union[AttemptRef, _Mapping]]] = ..., info: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., namespace: _Optional[str] = ..., queues: _Optional[_Iterable[str]] = ..., label_selector: _Optional[str] = ..., start_on_assignment: _Optional[bool] = ...) -> None: ...

class WorkerWelcome(_message.Message):
    __slots__ = ("worker_id", "heartbeat_timeout")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    heartbeat_timeout: _duration_pb2.Duration
    def __init__(self, worker_id: _Optional[str] = ..., heartbeat_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class WorkerReady(_message.Message):
    __slots__ = ("capacity",)
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    capacity: int
    def __init__(self, capacity: _Optional[int] = ...) -> None: ...

class AttemptAssignment(_message.Message):
    __slots__ = ("rollout", "resources", "resources_error")
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_ERROR_FIELD_NUMBER: _ClassVar[int]
    rollout: _types_pb2.Rollout
    resources: _resources_pb2.ResourcesUpdate
    resources_error: str
    def __init__(self, rollout: _Optional[_Union[_types_pb2.Rollout, _Mapping]] = ..., resources: _Optional[_Union[_resources_pb2.ResourcesUpdate, _Mapping]] = ..., resources_error: _Optional[str] = ...) -> None: ...

class AttemptReport(_message.Message):
    __slots__ = ("rollout_id", "attempt_id", "status", "metadata")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    attempt_id: str
    status: _types_pb2.AttemptStatus
    metadata: _struct_pb2.Struct
    def __init__(self, rollout_id: _Optional[str] = ..., attempt_id: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.AttemptStatus, str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class AttemptReportAck(_message.Message):
    __slots__ = ("rollout_id", "attempt_id", "code", "message", "status")
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    rollout_id: str
    attempt_id: str
    code: int
    message: str
    status: _types_pb2.AttemptStatus
    def __init__(self, rollout_id: _Optional[str] = ..., attempt_id: _Optional[str] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.AttemptStatus, str]] = ...) -> None: ...

class WorkerHeartbeat(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: _struct_pb2.Struct
    def __init__(self, stats: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
