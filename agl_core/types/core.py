"""The Python types of the store: rollouts, attempts, workers and their statuses.

They are plain dataclasses converted to and from the protobuf messages at the store boundary
(``agl_core.types.convert``). Statuses are string enums whose values are the lower-case names
used by the original project, so ``rollout.status == "succeeded"`` keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar


class RolloutStatus(StrEnum):
    QUEUING = "queuing"
    PREPARING = "preparing"
    RUNNING = "running"
    FAILED = "failed"
    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"
    REQUEUING = "requeuing"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_ROLLOUT


_TERMINAL_ROLLOUT = frozenset({RolloutStatus.FAILED, RolloutStatus.SUCCEEDED, RolloutStatus.CANCELLED})


class AttemptStatus(StrEnum):
    PREPARING = "preparing"
    RUNNING = "running"
    FAILED = "failed"
    SUCCEEDED = "succeeded"
    UNRESPONSIVE = "unresponsive"
    TIMEOUT = "timeout"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_ATTEMPT


_TERMINAL_ATTEMPT = frozenset({AttemptStatus.FAILED, AttemptStatus.SUCCEEDED, AttemptStatus.TIMEOUT})


class RolloutMode(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class WorkerStatus(StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    UNKNOWN = "unknown"


@dataclass(kw_only=True)
class RolloutConfig:
    """Retry and health policy of a rollout, applied on time by the store's watchdog.

    :param timeout_seconds: seconds an attempt may run before it is marked ``timeout``.
    :param unresponsive_seconds: seconds without a span or heartbeat before an attempt is marked
        ``unresponsive``.
    :param max_attempts: attempts allowed in total, the first included.
    :param retry_condition: attempt statuses (``failed``, ``timeout``, ``unresponsive``) that put
        the rollout back in the queue while attempts remain.
    """

    timeout_seconds: float | None = None
    unresponsive_seconds: float | None = None
    max_attempts: int = 1
    retry_condition: list[AttemptStatus] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.retry_condition = [AttemptStatus(s) for s in self.retry_condition]


@dataclass(kw_only=True)
class Attempt:
    rollout_id: str
    attempt_id: str
    sequence_id: int
    start_time: float
    end_time: float | None = None
    status: AttemptStatus = AttemptStatus.PREPARING
    worker_id: str | None = None
    last_heartbeat_time: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class Rollout:
    """A task with its lifecycle. ``attempt`` is the latest attempt, once there is one."""

    rollout_id: str
    input: Any
    start_time: float
    end_time: float | None = None
    mode: RolloutMode | None = None
    resources_id: str | None = None
    status: RolloutStatus = RolloutStatus.QUEUING
    config: RolloutConfig = field(default_factory=RolloutConfig)
    metadata: dict[str, Any] = field(default_factory=dict)
    attempt: Attempt | None = None
    #: The namespace (experiment) and queue the rollout belongs to, its labels and priority
    #: (0 to 1000, higher first); see docs/queues.md.
    namespace: str = "default"
    queue: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    priority: int = 0

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal


# The original project returned an ``AttemptedRollout`` from dequeue and start calls; here every
# rollout carries its latest attempt, so the name is kept as an alias for readers of that code.
AttemptedRollout = Rollout


@dataclass(kw_only=True)
class RolloutSpec:
    """A rollout to enqueue in a batch (see ``LightningStore.enqueue_rollouts``)."""

    input: Any
    mode: RolloutMode | str | None = None
    resources_id: str | None = None
    config: RolloutConfig | None = None
    metadata: dict[str, Any] | None = None
    rollout_id: str | None = None
    #: The queue to wait in (None: "default"), labels that workers' selectors match, and the
    #: priority (0 to 1000, higher dispatched first).
    queue: str | None = None
    labels: dict[str, str] | None = None
    priority: int = 0


@dataclass(kw_only=True)
class Worker:
    worker_id: str
    status: WorkerStatus = WorkerStatus.UNKNOWN
    last_heartbeat_time: float | None = None
    current_rollout_id: str | None = None
    current_attempt_id: str | None = None
    last_dequeue_time: float | None = None
    last_busy_time: float | None = None
    last_idle_time: float | None = None
    heartbeat_stats: dict[str, Any] = field(default_factory=dict)
    #: What the worker serves: its namespace, queues and label selector.
    namespace: str = "default"
    queues: list[str] = field(default_factory=list)
    label_selector: str = ""


@dataclass(kw_only=True)
class RolloutEvent:
    """A status change from the store's event log; ``event_id`` increases strictly."""

    event_id: int
    rollout_id: str
    old_status: RolloutStatus | None
    new_status: RolloutStatus
    time: float
    rollout: Rollout


@dataclass(kw_only=True)
class IngestResult:
    """What the store did with a batch of spans.

    :ivar rejected: ``(index, error)`` for spans that could not be placed.
    """

    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, Exception]] = field(default_factory=list)


T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    """One page of a query, with the number of matches in total."""

    items: list[T]
    total: int
    limit: int
    offset: int

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> T:
        return self.items[index]
