"""The edge checks' boundaries, on messages (the over-the-wire behaviour is in integration tests)."""

from __future__ import annotations

import math

import pytest

from agl_core.errors import InvalidArgumentError
from agl_core.proto import runner_pb2 as r
from agl_core.proto import store_pb2 as s
from agl_core.store import validation
from agl_core.store.request_checks import check_request

INT64_MAX = 2**63 - 1


def refused(message: object, *fragments: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        check_request(message)
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message


@pytest.mark.parametrize(
    ("seconds", "nanos", "ok"),
    [
        (0, 0, True),
        (INT64_MAX // 10**9, INT64_MAX % 10**9, True),  # the last int64 nanosecond
        (INT64_MAX // 10**9, INT64_MAX % 10**9 + 1, False),
        (253402300800, 0, False),  # the value: past 9999-12-31
        (1, -1, False),
        (-1, 0, False),
        (1, 10**9, False),
    ],
)
def test_timestamp_range(seconds: int, nanos: int, ok: bool) -> None:
    request = s.UpdateAttemptRequest(rollout_id="r", attempt_id="a")
    request.last_heartbeat_time.seconds = seconds
    request.last_heartbeat_time.nanos = nanos
    if ok:
        check_request(request)
    else:
        refused(request, "last_heartbeat_time is", "1970-01-01T00:00:00Z to 2262-04-11T23:47:16Z")


@pytest.mark.parametrize(
    ("seconds", "nanos", "ok"),
    [
        (0, 0, True),
        (-5, -1, True),
        (INT64_MAX // 10**9, 0, True),
        (INT64_MAX // 10**9 + 1, 0, False),
        (2**62, 0, False),  # the heartbeat_interval
        (1, -1, False),
        (-1, 1, False),
        (0, 10**9, False),
    ],
)
def test_duration_range(seconds: int, nanos: int, ok: bool) -> None:
    hello = r.WorkerHello()
    hello.heartbeat_interval.seconds = seconds
    hello.heartbeat_interval.nanos = nanos
    if ok:
        check_request(hello, "hello")
    else:
        with pytest.raises(InvalidArgumentError, match=r"hello\.heartbeat_interval is"):
            check_request(hello, "hello")


def test_ids_count_utf8_bytes() -> None:
    check_request(s.GetRolloutRequest(rollout_id="é" * 100))  # 200 bytes
    refused(s.GetRolloutRequest(rollout_id="é" * 101), "rollout_id is 202 bytes", "at most 200 bytes")
    refused(s.GetRolloutRequest(rollout_id="x" * 201), "rollout_id is 201 bytes")
    refused(s.UpdateRolloutRequest(rollout_id="r", resources_id="r" * 100_000), "resources_id is 100000 bytes")
    check_request(s.QueryRolloutsRequest(rollout_id_in=["a", ""]))  # an empty id matches nothing
    refused(s.QueryRolloutsRequest(rollout_id_in=["a", "x" * 201]), "rollout_id_in[1] is 201 bytes")
    assert validation.id_fits("🙂" * 50) and not validation.id_fits("🙂" * 51)


def test_nested_fields_are_named_by_their_path() -> None:
    request = s.EnqueueRolloutsRequest()
    spec = request.rollouts.add()
    spec.input.string_value = "x"
    spec.metadata.fields["loss"].number_value = math.inf
    refused(request, "rollouts[0].metadata.loss is inf")
    check_request(request, skip=frozenset({"rollouts"}))  # a batch's items are checked one by one


def test_sequence_ids() -> None:
    check_request(s.QuerySpansRequest(rollout_id="r", after_sequence_id=2**53 - 1))
    refused(s.QuerySpansRequest(rollout_id="r", after_sequence_id=2**53), "after_sequence_id is 9007199254740992")
    refused(s.QuerySpansRequest(rollout_id="r", after_sequence_id=-1), "after_sequence_id is -1")
