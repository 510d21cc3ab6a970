"""The lifecycle rules of rollouts and attempts, on protobuf enum values.

Kept free of any storage so every backend (LMDB or a plugin's) applies the same rules:

- An attempt's status propagates to its rollout only while it is the latest attempt:
  PREPARING, RUNNING and SUCCEEDED copy over; FAILED, TIMEOUT and UNRESPONSIVE requeue the
  rollout when the status is in the retry condition and attempts remain, else fail it.
- A terminal rollout (FAILED, SUCCEEDED, CANCELLED) never changes status again: not through its
  attempts, not through UpdateRollout, and it gets no new attempt (StartAttempt is refused). So
  each rollout reaches exactly one terminal status, the event log holds one terminal event per
  rollout, and nobody counts it twice. A task is run again as a new rollout.
- A terminal attempt (FAILED, SUCCEEDED, TIMEOUT) never changes status again; UNRESPONSIVE is
  not terminal, so a late heartbeat brings the attempt back to RUNNING.
"""

from __future__ import annotations

from agl_core.errors import FailedPreconditionError, InvalidArgumentError
from agl_core.proto import types_pb2 as t

RS = t.RolloutStatus
AS = t.AttemptStatus

TERMINAL_ROLLOUT = frozenset({t.ROLLOUT_STATUS_FAILED, t.ROLLOUT_STATUS_SUCCEEDED, t.ROLLOUT_STATUS_CANCELLED})
QUEUED_ROLLOUT = frozenset({t.ROLLOUT_STATUS_QUEUING, t.ROLLOUT_STATUS_REQUEUING})
TERMINAL_ATTEMPT = frozenset({t.ATTEMPT_STATUS_FAILED, t.ATTEMPT_STATUS_SUCCEEDED, t.ATTEMPT_STATUS_TIMEOUT})
# Attempts the watchdog guards: once UNRESPONSIVE the rollout has already been requeued or failed.
ACTIVE_ATTEMPT = frozenset({t.ATTEMPT_STATUS_PREPARING, t.ATTEMPT_STATUS_RUNNING})
# Rollout statuses a heartbeat of the latest attempt turns into RUNNING.
REVIVABLE_ROLLOUT = frozenset({t.ROLLOUT_STATUS_PREPARING, t.ROLLOUT_STATUS_QUEUING, t.ROLLOUT_STATUS_REQUEUING})
_RETRYABLE = frozenset({t.ATTEMPT_STATUS_FAILED, t.ATTEMPT_STATUS_TIMEOUT, t.ATTEMPT_STATUS_UNRESPONSIVE})
# Valid values of each enum, as sets: protobuf's EnumTypeWrapper.values() builds a new list per call.
ROLLOUT_STATUSES = frozenset(RS.values()) - {t.ROLLOUT_STATUS_UNSPECIFIED}
ATTEMPT_STATUSES = frozenset(AS.values()) - {t.ATTEMPT_STATUS_UNSPECIFIED}
ROLLOUT_MODES = frozenset(t.RolloutMode.values())
WORKER_STATUSES = frozenset(t.WorkerStatus.values()) - {t.WORKER_STATUS_UNSPECIFIED}
SORT_ORDERS = frozenset(t.SortOrder.values())


def rollout_status_name(status: int) -> str:
    return RS.Name(status).removeprefix("ROLLOUT_STATUS_").lower() if status in ROLLOUT_STATUSES else str(status)


def attempt_status_name(status: int) -> str:
    return AS.Name(status).removeprefix("ATTEMPT_STATUS_").lower() if status in ATTEMPT_STATUSES else str(status)


def max_attempts(config: t.RolloutConfig) -> int:
    return max(1, config.max_attempts)


def rollout_status_for_attempt(attempt_status: int, attempt_sequence: int, config: t.RolloutConfig) -> int:
    """The status the rollout takes when its latest attempt reaches ``attempt_status``."""
    if attempt_status in _RETRYABLE:
        if attempt_status in config.retry_condition and attempt_sequence < max_attempts(config):
            return t.ROLLOUT_STATUS_REQUEUING
        return t.ROLLOUT_STATUS_FAILED
    if attempt_status == t.ATTEMPT_STATUS_PREPARING:
        return t.ROLLOUT_STATUS_PREPARING
    if attempt_status == t.ATTEMPT_STATUS_RUNNING:
        return t.ROLLOUT_STATUS_RUNNING
    if attempt_status == t.ATTEMPT_STATUS_SUCCEEDED:
        return t.ROLLOUT_STATUS_SUCCEEDED
    raise InvalidArgumentError(f"attempt status {attempt_status} is not a valid AttemptStatus")


def check_rollout_transition(rollout_id: str, old: int, new: int) -> None:
    """Raise unless a client may move a rollout from ``old`` to ``new`` with UpdateRollout."""
    if new not in ROLLOUT_STATUSES:
        raise InvalidArgumentError(
            f"status {new} is not a rollout status; use queuing, preparing, running, failed, succeeded, "
            "cancelled or requeuing"
        )
    if old in TERMINAL_ROLLOUT and new != old:
        raise FailedPreconditionError(
            f"rollout {rollout_id!r} is already {rollout_status_name(old)} and cannot become "
            f"{rollout_status_name(new)}; terminal rollouts keep their status (enqueue a new rollout to run "
            "the task again)"
        )


def check_new_attempt(rollout_id: str, status: int) -> None:
    """Raise unless a rollout in ``status`` may get a new attempt by hand (StartAttempt).

    Only a rollout that is not terminal may: re-opening a terminal one would give it a second
    terminal status, which watchers would count twice.
    """
    if status in TERMINAL_ROLLOUT:
        raise FailedPreconditionError(
            f"rollout {rollout_id!r} is already {rollout_status_name(status)}, and a terminal rollout gets no new "
            "attempt (it keeps exactly one terminal status); enqueue a new rollout with the same input to run the "
            "task again"
        )


def check_attempt_transition(rollout_id: str, attempt_id: str, old: int, new: int) -> None:
    """Raise unless an attempt may move from ``old`` to ``new``."""
    if new not in ATTEMPT_STATUSES:
        raise InvalidArgumentError(
            f"status {new} is not an attempt status; use preparing, running, failed, succeeded, unresponsive or timeout"
        )
    if old in TERMINAL_ATTEMPT and new != old:
        raise FailedPreconditionError(
            f"attempt {attempt_id!r} of rollout {rollout_id!r} is already {attempt_status_name(old)} and cannot "
            f"become {attempt_status_name(new)}; start a new attempt to run the rollout again"
        )


def check_config(config: t.RolloutConfig, where: str = "config") -> None:
    """Raise InvalidArgumentError for a policy the watchdog could not apply."""
    for name in ("timeout_seconds", "unresponsive_seconds"):
        if config.HasField(name):
            value = getattr(config, name)
            if not value > 0 or value != value or value == float("inf"):
                raise InvalidArgumentError(
                    f"{where}.{name} is {value}; it must be a positive number of seconds (leave it unset for no limit)"
                )
    if config.max_attempts < 0:
        raise InvalidArgumentError(f"{where}.max_attempts is {config.max_attempts}; it must be at least 1")
    for status in config.retry_condition:
        if status not in _RETRYABLE:
            raise InvalidArgumentError(
                f"{where}.retry_condition contains {attempt_status_name(status)}; only failed, timeout and "
                "unresponsive attempts can be retried"
            )
