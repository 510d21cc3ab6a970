"""The dashboard's JSON API and event stream against a real agl-server (no browser needed)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agl_core.client import GrpcStore
from agl_core.runner.results import exception_span, reward_span
from agl_core.types import LLM
from agl_server.process import ServerProcess

TIMEOUT_S = 60


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:
        yield session


async def get(http: aiohttp.ClientSession, url: str, status: int = 200) -> Any:
    async with http.get(url) as response:
        body = await response.json()
        assert response.status == status, body
        return body


async def test_a_retried_rollout_shows_both_attempts_its_spans_and_reward(
    dashboard: tuple[GrpcStore, str], http: aiohttp.ClientSession
) -> None:
    store, base = dashboard
    llm = LLM(endpoint="http://llm", model="m", api_key="sk-hidden")
    await store.add_resources({"main_llm": llm}, resources_id="r1")
    rollout = await store.enqueue_rollout(
        {"question": "2+2"}, resources_id="r1", config={"max_attempts": 2, "retry_condition": ["failed"]}
    )
    queued = await get(http, f"{base}/api/rollouts/{rollout.rollout_id}")
    assert (queued["status"], queued["attempts"], queued["spans"], queued["reward"]) == ("queuing", [], [], None)
    first = await store.dequeue_rollout(worker_id="w1")
    assert first is not None and first.attempt is not None
    await store.add_spans([exception_span(first, RuntimeError("flaky tool"))])
    await store.update_attempt(rollout.rollout_id, first.attempt.attempt_id, status="failed")
    second = await store.dequeue_rollout(worker_id="w2")
    assert second is not None and second.attempt is not None
    await store.update_attempt(rollout.rollout_id, second.attempt.attempt_id, status="succeeded")
    # The reward arrives after the status (as OTLP exports may): the table is not stuck without it.
    assert (await get(http, f"{base}/api/rollouts"))["items"][0]["reward"] is None
    await store.add_spans([reward_span(second, 0.75)])

    body = await get(http, f"{base}/api/rollouts/{rollout.rollout_id}")
    assert body["status"] == "succeeded" and body["reward"] == 0.75 and body["resources_version"] == 1
    assert [(a["sequence_id"], a["status"], a["worker_id"]) for a in body["attempts"]] == [
        (1, "failed", "w1"),
        (2, "succeeded", "w2"),
    ]
    kinds = {(s["attempt_id"], s["kind"]) for s in body["spans"]}
    assert kinds == {(first.attempt.attempt_id, "error"), (second.attempt.attempt_id, "reward")}
    assert [r["values"] for r in body["rewards"]] == [{"reward": 0.75}]
    assert body["input"] == {"question": "2+2"}

    table = await get(http, f"{base}/api/rollouts?status=succeeded")
    assert [(r["rollout_id"], r["attempts"], r["reward"]) for r in table["items"]] == [(rollout.rollout_id, 2, 0.75)]
    series = await get(http, f"{base}/api/rewards")
    assert series["series"][0]["resources_id"] == "r1" and series["series"][0]["version"] == 1
    assert [p["reward"] for p in series["series"][0]["points"]] == [0.75]
    resources = await get(http, f"{base}/api/resources")
    assert resources["latest"] == {"default": "r1"}
    assert resources["items"][0]["resources"]["main_llm"]["api_key"] == "(set)"
    assert "sk-hidden" not in json.dumps(resources)
    workers = await get(http, f"{base}/api/workers")
    assert {w["worker_id"] for w in workers["items"]} == {"w1", "w2"}


BAD_QUERIES = [
    ("status=done", "'status'"),
    ("mode=prod", "'mode'"),
    ("limit=0", "'limit'"),
    ("limit=ten", "'limit'"),
    ("offset=-1", "'offset'"),
    ("sort=reward", "'sort'"),
    ("order=up", "'order'"),
    ("order=asc,desc", "'order'"),
]


async def test_bad_parameters_get_400_naming_them_and_change_nothing(
    dashboard: tuple[GrpcStore, str], http: aiohttp.ClientSession
) -> None:
    store, base = dashboard
    await store.enqueue_rollout({"n": 1})
    before = await store.stats()
    for query, name in BAD_QUERIES:  # one server for all: each case is one request
        body = await get(http, f"{base}/api/rollouts?{query}", status=400)
        assert name in body["error"], (query, body)
    assert (await store.stats())["rollouts_by_status"] == before["rollouts_by_status"]
    assert (await get(http, f"{base}/api/rollouts"))["total"] == 1


async def test_every_namespace_by_default_one_with_namespace(
    dashboard: tuple[GrpcStore, str], http: aiohttp.ClientSession
) -> None:
    store, base = dashboard
    other = store.with_namespace("exp-2")
    here = await store.enqueue_rollout({"n": 1})
    there = await other.enqueue_rollout({"n": 2})
    await other.add_resources({"main_llm": LLM(endpoint="http://llm", model="m")}, resources_id="exp2-r1")
    rows = (await get(http, f"{base}/api/rollouts"))["items"]
    assert {(r["rollout_id"], r["namespace"]) for r in rows} == {
        (here.rollout_id, "default"),
        (there.rollout_id, "exp-2"),
    }
    scoped = (await get(http, f"{base}/api/rollouts?namespace=exp-2"))["items"]
    assert [r["rollout_id"] for r in scoped] == [there.rollout_id]
    assert (await get(http, f"{base}/api/resources"))["latest"] == {"exp-2": "exp2-r1"}
    body = await get(http, f"{base}/api/rollouts?namespace=no%20spaces", status=400)
    assert "namespace" in body["error"]


async def test_unknown_rollout_is_404_and_bad_resume_id_is_400(
    dashboard: tuple[GrpcStore, str], http: aiohttp.ClientSession
) -> None:
    _, base = dashboard
    body = await get(http, f"{base}/api/rollouts/ro-missing", status=404)
    assert body["error"] == "rollout 'ro-missing' not found"
    async with http.get(f"{base}/api/events", headers={"Last-Event-ID": "abc"}) as response:
        assert response.status == 400
        assert "Last-Event-ID" in (await response.json())["error"]


async def read_event(response: aiohttp.ClientResponse) -> tuple[str, dict[str, Any], str | None]:
    """The next server-sent event: (type, data, id); keepalive comments are skipped."""
    fields: dict[str, str] = {}
    while True:
        line = (await asyncio.wait_for(response.content.readline(), TIMEOUT_S)).decode().rstrip("\n")
        if not line:
            if fields:
                return fields.get("event", "message"), json.loads(fields["data"]), fields.get("id")
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(": ")
        fields[key] = value


async def test_events_stream_status_changes_and_resume_after_an_id(
    dashboard: tuple[GrpcStore, str], http: aiohttp.ClientSession
) -> None:
    store, base = dashboard
    async with http.get(f"{base}/api/events") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        kind, data, _ = await read_event(response)
        assert kind == "ready"
        rollout = await store.enqueue_rollout({"n": 1})
        kind, data, event_id = await read_event(response)
        assert (kind, data["rollout_id"], data["new_status"]) == ("rollout", rollout.rollout_id, "queuing")
        await store.update_rollout(rollout.rollout_id, status="cancelled")
        kind, data, cancelled_id = await read_event(response)
        assert (data["old_status"], data["new_status"]) == ("queuing", "cancelled")
        assert data["rollout"]["status"] == "cancelled"
    # A browser reconnecting with Last-Event-ID gets what came after it, nothing before.
    async with http.get(f"{base}/api/events", headers={"Last-Event-ID": str(event_id)}) as response:
        kind, _, _ = await read_event(response)
        assert kind == "ready"
        kind, data, resumed_id = await read_event(response)
        assert (kind, data["new_status"], resumed_id) == ("rollout", "cancelled", cancelled_id)


async def test_pages_and_assets_are_served_from_the_package(
    dashboard: tuple[GrpcStore, str], http: aiohttp.ClientSession
) -> None:
    _, base = dashboard
    async with http.get(f"{base}/", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == "/dashboard/"
    async with http.get(f"{base}/dashboard/") as response:
        page = await response.text()
        assert response.status == 200 and "static/js/main.js" in page
        assert "http://" not in page and "https://" not in page  # nothing from elsewhere
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    for asset, kind in [
        ("js/main.js", "javascript"),
        ("js/util.js", "javascript"),
        ("style.css", "text/css"),
        ("vendor/uPlot.iife.min.js", "javascript"),
        ("vendor/uPlot.LICENSE", ""),
    ]:
        async with http.get(f"{base}/dashboard/static/{asset}") as response:
            assert response.status == 200, asset
            assert kind in response.headers["Content-Type"]


async def test_with_a_token_a_browser_signs_in_once_and_the_cookie_only_reads(tmp_path: Path) -> None:
    token = "dashboard-test-token"
    env = {**os.environ, "AGL_TOKEN": token}
    with ServerProcess(tmp_path / "data", args=["--http-port", "0"], env=env, log_path=tmp_path / "log") as server:
        base = server.http_url
        jar = aiohttp.CookieJar(unsafe=True)  # unsafe: keep cookies of an IP-address host (127.0.0.1)
        async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as http:
            async with http.get(f"{base}/api/rollouts") as response:
                assert response.status == 401
            page = {"Accept": "text/html"}
            async with http.get(f"{base}/dashboard/", headers=page, allow_redirects=False) as response:
                assert response.status == 302 and response.headers["Location"] == "/dashboard/login"
            async with http.post(f"{base}/dashboard/login", data={"token": "wrong"}) as response:
                assert response.status == 401 and "not the token of this agl-server" in await response.text()
            assert len(jar) == 0
            async with http.post(f"{base}/dashboard/login", data={"token": token}, allow_redirects=False) as response:
                assert response.status == 302 and response.headers["Location"] == "/dashboard/"
                cookie = response.cookies["agl_dashboard_token"]
                assert cookie["httponly"] and cookie["samesite"] == "Strict"
            assert (await get(http, f"{base}/api/rollouts"))["total"] == 0
            async with http.get(f"{base}/dashboard/", headers=page) as response:
                assert response.status == 200 and "static/js/main.js" in await response.text()
            # The cookie opens the read-only dashboard, nothing else.
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 401
            async with http.post(
                f"{base}/v1/traces", data=b"", headers={"Content-Type": "application/x-protobuf"}
            ) as response:
                assert response.status == 401
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as http:
            async with http.get(f"{base}/api/stats", headers={"Authorization": f"Bearer {token}"}) as response:
                assert response.status == 200


async def test_an_open_event_stream_does_not_hold_up_shutdown(
    agl_server: ServerProcess, dashboard: tuple[GrpcStore, str], http: aiohttp.ClientSession
) -> None:
    _, base = dashboard
    async with http.get(f"{base}/api/events") as response:
        kind, _, _ = await read_event(response)
        assert kind == "ready"
        # SIGTERM; a stream kept open would hold the listener until the grace period and then be killed.
        code = await asyncio.get_running_loop().run_in_executor(None, agl_server.stop)
        assert code == 0, agl_server.log_tail()
        assert await asyncio.wait_for(response.content.read(), TIMEOUT_S) == b""
