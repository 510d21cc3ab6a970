"""The dashboard's JSON shapes of store objects: rollouts, attempts, workers, resources.

Times are unix seconds (floats) as in the Python API; the browser formats them. Secrets never
leave the server: an LLM resource's ``api_key`` is replaced by whether one is set.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from agl_core.types.core import Attempt, Rollout, Worker
from agl_core.types.resources import ResourcesUpdate

# Longest preview of a rollout's input in the rollouts table (the rollout page shows it whole).
INPUT_PREVIEW_CHARS = 160


def _plain(value: Any) -> Any:
    """``value`` as JSON-able data (enums become their string values, dataclasses dicts)."""
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return str(value)


def preview(value: Any, limit: int = INPUT_PREVIEW_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=_default, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def attempt_view(attempt: Attempt) -> dict[str, Any]:
    return {
        "attempt_id": attempt.attempt_id,
        "sequence_id": attempt.sequence_id,
        "status": str(attempt.status),
        "start_time": attempt.start_time,
        "end_time": attempt.end_time,
        "worker_id": attempt.worker_id,
        "last_heartbeat_time": attempt.last_heartbeat_time,
        "metadata": _plain(attempt.metadata),
    }


def rollout_row(rollout: Rollout, reward: float | None) -> dict[str, Any]:
    """One line of the rollouts table."""
    attempt = rollout.attempt
    return {
        "rollout_id": rollout.rollout_id,
        "namespace": rollout.namespace,
        "queue": rollout.queue,
        "status": str(rollout.status),
        "mode": str(rollout.mode) if rollout.mode else None,
        "resources_id": rollout.resources_id,
        "start_time": rollout.start_time,
        "end_time": rollout.end_time,
        "attempts": attempt.sequence_id if attempt else 0,
        "worker_id": attempt.worker_id if attempt else None,
        "input_preview": preview(rollout.input),
        "reward": reward,
    }


def rollout_view(rollout: Rollout) -> dict[str, Any]:
    """A rollout in full (without its attempts, which the caller lists)."""
    return {
        **rollout_row(rollout, None),
        "input": _plain(rollout.input),
        "config": _plain(rollout.config),
        "metadata": _plain(rollout.metadata),
    }


def worker_view(worker: Worker) -> dict[str, Any]:
    return {
        "worker_id": worker.worker_id,
        "namespace": worker.namespace,
        "status": str(worker.status),
        "last_heartbeat_time": worker.last_heartbeat_time,
        "current_rollout_id": worker.current_rollout_id,
        "current_attempt_id": worker.current_attempt_id,
        "last_dequeue_time": worker.last_dequeue_time,
        "last_busy_time": worker.last_busy_time,
        "last_idle_time": worker.last_idle_time,
        "heartbeat_stats": _plain(worker.heartbeat_stats),
    }


def resource_view(resource: Any) -> dict[str, Any]:
    fields = _plain(resource)
    if isinstance(fields, dict) and "api_key" in fields:
        fields["api_key"] = "(set)" if fields["api_key"] else None
    return {"type": type(resource).__name__, **(fields if isinstance(fields, dict) else {"value": fields})}


def resources_view(update: ResourcesUpdate) -> dict[str, Any]:
    return {
        "resources_id": update.resources_id,
        "namespace": update.namespace,
        "version": update.version,
        "create_time": update.create_time,
        "update_time": update.update_time,
        "resources": {name: resource_view(resource) for name, resource in sorted(update.resources.items())},
    }
