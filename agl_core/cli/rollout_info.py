"""What ``agl rollouts show`` gathers about one rollout: attempts, resources version, rewards and
the status history from the server's event log."""

from __future__ import annotations

from typing import Any

from agl_core import semconv
from agl_core.client import GrpcStore
from agl_core.proto import store_pb2 as s
from agl_core.types import convert
from agl_core.types.core import Attempt


async def all_attempts(store: GrpcStore, rollout_id: str) -> list[Attempt]:
    attempts: list[Attempt] = []
    while True:
        page = await store.query_attempts(rollout_id, limit=1000, offset=len(attempts))
        attempts.extend(page.items)
        if not page.items or len(attempts) >= page.total:
            return attempts


async def status_history(store: GrpcStore, rollout_id: str) -> list[dict[str, Any]]:
    """The rollout's status changes, oldest first, replayed from the event log up to its current end
    (taken from GetStats before the replay, so the replay ends even while changes keep coming)."""
    end = (await store.backend.get_stats(s.GetStatsRequest())).last_event_id
    history: list[dict[str, Any]] = []
    if end == 0:
        return history
    request = s.WatchRolloutsRequest(rollout_ids=[rollout_id], after_event_id=0)
    responses = store.backend.watch_rollouts(request)
    try:
        async for response in responses:
            for pb in response.events:
                event = convert.event_from_pb(pb)
                history.append(
                    {
                        "event_id": event.event_id,
                        "time": event.time,
                        "old_status": event.old_status.value if event.old_status else None,
                        "new_status": event.new_status.value,
                        "attempt_id": event.rollout.attempt.attempt_id if event.rollout.attempt else None,
                    }
                )
            if response.last_event_id >= end:
                break
    finally:
        await responses.aclose()  # type: ignore[attr-defined]
    return history


async def rollout_details(store: GrpcStore, rollout_id: str, *, history: bool = True) -> dict[str, Any] | None:
    """The JSON shape of ``agl rollouts show`` (documented there), or None if there is no such rollout."""
    # Imported here: the emitter brings the OpenTelemetry SDK, which the other commands do not need.
    from agl_core.emitter.reward import find_final_reward, get_rewards, is_reward_span

    rollout = await store.get_rollout(rollout_id)
    if rollout is None:
        return None
    attempts = await all_attempts(store, rollout_id)
    reward_spans = await store.query_spans(rollout_id, name=semconv.SPAN_REWARD)
    resources = None
    if rollout.resources_id:
        update = await store.get_resources(rollout.resources_id)
        if update is not None:
            resources = {"resources_id": update.resources_id, "version": update.version}
    rewards: dict[str, float] = {}
    per_attempt: dict[str, float | None] = {}
    for attempt in attempts:
        own = [span for span in reward_spans if span.attempt_id == attempt.attempt_id]
        per_attempt[attempt.attempt_id] = find_final_reward(own)
    final = [span for span in reward_spans if is_reward_span(span)]
    if final:
        latest = max(final, key=lambda span: (span.end_time_unix_nano, span.sequence_id))
        rewards = get_rewards(latest)
    return {
        "rollout": rollout,
        "attempts": [{**_attempt_dict(attempt), "reward": per_attempt.get(attempt.attempt_id)} for attempt in attempts],
        "resources": resources,
        "reward": find_final_reward(reward_spans),
        "rewards": rewards,
        "history": await status_history(store, rollout_id) if history else None,
    }


def _attempt_dict(attempt: Attempt) -> dict[str, Any]:
    from agl_core.cli.output import to_jsonable

    return to_jsonable(attempt)
