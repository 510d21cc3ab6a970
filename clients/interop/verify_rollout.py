#!/usr/bin/env python3
"""Check, from Python, a rollout that a Go or TypeScript agent ran against agl-server.

The Go and TS test suites call this script (with the repository's virtual environment) after
their client ran a rollout, so the spans and rewards those clients wrote are read back through
the Python client and the Python helpers (``span_attributes``, ``agl_core.semconv``), the way
an algorithm would read them. It checks what must hold for every rollout a runner finishes:

- the rollout is terminal with the expected status, and its latest attempt too;
- every span of the latest attempt carries the rollout and attempt ids, a trace id shared by the
  whole attempt, a unique span id and a parent that exists (one root: ``agl.rollout``);
- each expected span (by name) exists with at least the expected attributes and parent;
- the reward (the ``agl.reward.value`` of the last ``agl.reward`` span) is the expected one;
- ``read_reward``: the reward as an algorithm reads it (``agl_core.algorithm.read_reward``, which
  also takes integer values, as OpenTelemetry SDKs write integral numbers).

Expectations come as JSON (``--expect``)::

    {"status": "succeeded", "reward": 1.0, "span_count": 5,
     "spans": [{"name": "calculator", "parent": "agl.rollout",
                "attributes": {"agl.tool.name": "calculator"}}]}

``parent`` names the parent span; an empty string means a root span; left out, any parent.
``scope`` names the span's instrumentation scope (what an OpenTelemetry SDK's tracer is called).
Expected bytes attributes are written ``{"bytes": "<hex>"}``, integral doubles ``{"double": 42}``
(JSON cannot tell 42.0 from 42).

Prints a JSON summary of what it read; exits 1 with the mismatches when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from typing import Any

from agl_core import semconv
from agl_core.algorithm import read_reward
from agl_core.client import GrpcStore
from agl_core.types import span_attributes


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _describe(span: Any) -> dict[str, Any]:
    return {
        "name": span.name,
        "sequence_id": span.sequence_id,
        "attributes": _jsonable(span_attributes(span)),
    }


def _same(expected: Any, actual: Any) -> bool:
    """Whether an attribute value matches its expectation, type included (an int attribute does
    not match an expected double). JSON cannot tell 42.0 from 42, so an integral double is
    expected as ``{"double": 42}``; bytes as ``{"bytes": "<hex>"}``."""
    if isinstance(expected, dict) and set(expected) == {"bytes"}:
        return isinstance(actual, bytes) and bytes.fromhex(expected["bytes"]) == actual
    if isinstance(expected, dict) and set(expected) == {"double"}:
        return isinstance(actual, float) and _same(float(expected["double"]), actual)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return all(k in actual and _same(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(map(_same, expected, actual))
    if isinstance(expected, float) and isinstance(actual, float):
        return expected == actual or (math.isnan(expected) and math.isnan(actual))
    return type(expected) is type(actual) and expected == actual


async def verify(address: str, token: str | None, rollout_id: str, expect: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    async with GrpcStore(address, token=token) as store:
        rollout = await store.get_rollout(rollout_id)
        if rollout is None:
            return [f"rollout {rollout_id!r} does not exist"]
        attempt = rollout.attempt
        if attempt is None:
            return [f"rollout {rollout_id!r} has no attempt"]
        spans = await store.query_spans(rollout_id, attempt.attempt_id)

    summary: dict[str, Any] = {
        "rollout_id": rollout_id,
        "status": str(rollout.status),
        "attempt_status": str(attempt.status),
        "spans": [_describe(s) for s in spans],
    }
    print(json.dumps(summary, indent=1, default=str))

    if "status" in expect:
        if str(rollout.status) != expect["status"]:
            problems.append(f"rollout status is {rollout.status}, expected {expect['status']}")
        if str(attempt.status) != expect["status"]:
            problems.append(f"attempt status is {attempt.status}, expected {expect['status']}")
    if "span_count" in expect and len(spans) != expect["span_count"]:
        names = [s.name for s in spans]
        problems.append(f"{len(spans)} spans stored, expected {expect['span_count']}: {names}")

    by_id = {s.span_id: s for s in spans}
    if len(by_id) != len(spans):
        problems.append("span ids are not unique within the attempt")
    trace_ids = {s.trace_id for s in spans}
    if len(trace_ids) > 1:
        problems.append(f"the attempt's spans use {len(trace_ids)} trace ids, expected one")
    roots = [s for s in spans if not s.parent_span_id]
    if spans and [r.name for r in roots] != [semconv.SPAN_ROLLOUT]:
        problems.append(f"expected one root span {semconv.SPAN_ROLLOUT!r}, found {[r.name for r in roots]}")
    sequence_ids = [s.sequence_id for s in spans]
    if sequence_ids != sorted(set(sequence_ids)) or (spans and sequence_ids[0] <= 0):
        problems.append(f"sequence ids are not positive and strictly increasing: {sequence_ids}")
    for span in spans:
        if span.rollout_id != rollout_id or span.attempt_id != attempt.attempt_id:
            problems.append(f"span {span.name!r} belongs to {span.rollout_id}/{span.attempt_id}")
        if len(span.trace_id) != 16 or not any(span.trace_id):
            problems.append(f"span {span.name!r} has an invalid trace id {span.trace_id.hex()}")
        if span.parent_span_id and span.parent_span_id not in by_id:
            problems.append(f"span {span.name!r} has a parent {span.parent_span_id.hex()} that is not stored")
        if span.end_time_unix_nano < span.start_time_unix_nano or span.start_time_unix_nano == 0:
            problems.append(
                f"span {span.name!r} has start {span.start_time_unix_nano} and end {span.end_time_unix_nano}"
            )

    for wanted in expect.get("spans", []):
        candidates = [s for s in spans if s.name == wanted["name"]]
        if not candidates:
            problems.append(f"no span named {wanted['name']!r}")
            continue
        matching = [
            s
            for s in candidates
            if _same(wanted.get("attributes", {}), span_attributes(s))
            and (
                "parent" not in wanted
                or (not wanted["parent"] and not s.parent_span_id)
                or (s.parent_span_id in by_id and by_id[s.parent_span_id].name == wanted["parent"])
            )
            and ("scope" not in wanted or s.scope.name == wanted["scope"])
        ]
        if not matching:
            scope = f" in scope {wanted['scope']!r}" if "scope" in wanted else ""
            problems.append(
                f"no span {wanted['name']!r} with attributes {wanted.get('attributes')} and parent "
                f"{wanted.get('parent', '(any)')!r}{scope}; "
                f"found {[_jsonable(span_attributes(s)) for s in candidates]}"
            )

    if "reward" in expect:
        reward_spans = [s for s in spans if s.name == semconv.SPAN_REWARD]
        rewards = [span_attributes(s).get(semconv.REWARD_VALUE) for s in reward_spans]
        if not rewards:
            problems.append("no reward span")
        elif not isinstance(rewards[-1], float) or rewards[-1] != float(expect["reward"]):
            reward = rewards[-1]
            problems.append(f"reward is {reward!r} ({type(reward).__name__}), expected {expect['reward']}")
    if "read_reward" in expect:
        async with GrpcStore(address, token=token) as store:
            read = await read_reward(store, rollout_id)
        if read != expect["read_reward"]:
            problems.append(f"the algorithm reads the reward {read!r}, expected {expect['read_reward']}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--token")
    parser.add_argument("--rollout-id", required=True)
    parser.add_argument("--expect", default="{}", help="expectations as JSON (see the module docstring)")
    args = parser.parse_args()
    problems = asyncio.run(verify(args.address, args.token, args.rollout_id, json.loads(args.expect)))
    for problem in problems:
        print(f"MISMATCH: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
