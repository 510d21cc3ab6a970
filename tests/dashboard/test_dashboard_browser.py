"""The dashboard in a real headless browser against a real agl-server with real data.

Rollouts are run by agl's own Runner (on the Work stream) with an agent whose LLM calls go through
the instrumented OpenAI client to the suite's OpenAI-compatible server, under two resources sets;
the agent emits a reward computed from the reply. The browser then reads every page, and a rollout
finished while the rollouts page is open appears on it without a reload (live events). Screenshots
of each page are saved under test-artifacts/dashboard/ (see docs/dashboard.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from support.openai_server import OpenAIServer
from support.runners import runners

from agl_core.client import GrpcStore
from agl_core.emitter import emit_reward
from agl_core.tracer import OtelTracer
from agl_core.types import LLM, Rollout

# Generous: a loaded CI machine (load 8-20 on 2 cores) renders slowly; these are give-up bounds.
TIMEOUT_MS = 90_000
SYSTEM = "Answer in one line."
# (question, expected word): the echo model repeats the question, so the reward is 1 when the
# expected word is in the question, 0 otherwise.
TASKS_V1 = [("spell cat", "cat"), ("spell dog", "cow"), ("spell owl", "owl")]
TASKS_V2 = [("name a fox", "fox"), ("name a bee", "bee"), ("name an elk", "elk")]


async def quiz_agent(rollout: Rollout, llm: LLM) -> None:
    client = openai.AsyncOpenAI(base_url=llm.endpoint, api_key="unused")
    reply = await client.chat.completions.create(
        model=llm.model,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": rollout.input["question"]}],
        temperature=llm.sampling_parameters.get("temperature", 1.0),
        extra_body={"return_token_ids": True},
    )
    emit_reward(1.0 if rollout.input["expect"] in (reply.choices[0].message.content or "") else 0.0)


@pytest.fixture
def tracer() -> Iterator[OtelTracer]:
    tracer = OtelTracer()
    tracer.init()
    try:
        yield tracer
    finally:
        tracer.teardown()


async def run_batch(store: GrpcStore, tasks: list[tuple[str, str]], resources_id: str) -> list[str]:
    enqueued = await store.enqueue_rollouts(
        [{"input": {"question": q, "expect": e}, "resources_id": resources_id, "mode": "train"} for q, e in tasks]
    )
    ids = [r.rollout_id for r in enqueued]
    finished = await store.wait_for_rollouts(ids, timeout=120)
    assert sorted(r.status for r in finished) == ["succeeded"] * len(ids), [r.status for r in finished]
    return ids


async def test_dashboard_shows_rollouts_traces_rewards_and_live_updates(
    dashboard: tuple[GrpcStore, str],
    openai_server: OpenAIServer,
    tracer: OtelTracer,
    browser: Any,
    screenshots: Path,
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    store, base = dashboard
    async with runners(store, tracer, quiz_agent, count=2):
        llm = {"endpoint": openai_server.base_url, "model": openai_server.model}
        await store.add_resources(
            {"main_llm": LLM(**llm, api_key="sk-not-for-browsers", sampling_parameters={"temperature": 1.0})},
            resources_id="policy-v1",
        )
        v1 = await run_batch(store, TASKS_V1, "policy-v1")
        await store.add_resources(
            {"main_llm": LLM(**llm, sampling_parameters={"temperature": 0.2})}, resources_id="policy-v2"
        )
        v2 = await run_batch(store, TASKS_V2, "policy-v2")

        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # A Content-Security-Policy violation (something the page tried to load or run) is a console error.
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on(
            "response",
            lambda response: errors.append(f"{response.status} {response.url}") if response.status >= 400 else None,
        )

        # Rollouts: one row per rollout, with its status and reward.
        await page.goto(base + "/dashboard/#/rollouts")
        rows = page.locator("tr[data-rollout-id]")
        await expect(rows).to_have_count(6)
        await expect(page.get_by_test_id("live")).to_have_text("live")
        dog = page.locator(f'tr[data-rollout-id="{v1[1]}"]')
        await expect(dog).to_have_attribute("data-status", "succeeded")
        await expect(dog.get_by_test_id("reward")).to_have_text("0")
        await expect(page.locator(f'tr[data-rollout-id="{v2[0]}"]').get_by_test_id("reward")).to_have_text("1")
        await page.screenshot(path=screenshots / "rollouts.png", full_page=True)

        # Filters: by mode, by a part of an id, by status.
        await page.get_by_test_id("filter-q").fill(v2[2])
        await expect(rows).to_have_count(1)
        await page.get_by_test_id("filter-q").fill("")
        await page.get_by_test_id("filter-status-failed").check()
        await expect(page.get_by_text("no rollouts match")).to_be_visible()
        await page.get_by_test_id("filter-status-failed").uncheck()
        await expect(rows).to_have_count(6)

        # A rollout: attempts, its LLM call's messages and token counts, its reward, the span timeline.
        await page.locator(f'tr[data-rollout-id="{v1[0]}"] a').click()
        await expect(page.get_by_test_id("rollout-id")).to_have_text(v1[0])
        await expect(page.get_by_test_id("rollout-reward")).to_have_text("1")
        call = page.get_by_test_id("llm-call")
        await expect(call).to_have_count(1)
        messages = call.get_by_test_id("message")
        await expect(messages).to_have_count(3)
        await expect(messages.nth(0)).to_contain_text(SYSTEM)
        await expect(messages.nth(1)).to_contain_text("spell cat")
        await expect(messages.nth(2)).to_have_attribute("data-role", "assistant")
        await expect(messages.nth(2)).to_contain_text("echo: spell cat")
        prompt_ids = openai_server.prompt_token_ids(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "spell cat"}]
        )
        await expect(call.get_by_test_id("input-tokens")).to_have_text(f"input tokens {len(prompt_ids)}")
        response_ids = openai_server.response_token_ids("echo: spell cat")
        await expect(call.get_by_test_id("output-tokens")).to_have_text(f"output tokens {len(response_ids)}")
        await expect(call.get_by_test_id("call-reward")).to_have_text("reward 1")
        await expect(page.get_by_test_id("attempts").locator("tbody tr")).to_have_count(1)
        timeline = page.get_by_test_id("span-row")
        await expect(timeline.and_(page.locator('[data-kind="llm"]'))).to_have_count(1)
        await expect(timeline.and_(page.locator('[data-kind="reward"]'))).to_have_count(1)
        await page.screenshot(path=screenshots / "rollout.png", full_page=True)

        # Reward over time: one series per resources set, every finished rollout a point.
        await page.goto(base + "/dashboard/#/rewards")
        series = page.get_by_test_id("reward-series").locator("tbody tr")
        await expect(series).to_have_count(2)
        await expect(series.nth(0).get_by_test_id("series-count")).to_have_text("3")
        await expect(page.get_by_test_id("reward-chart").locator("canvas")).to_have_count(1)
        plotted = await page.evaluate(
            "() => window.aglChart.data.slice(1).map((ys) => ys.filter((y) => y !== null && y !== undefined))"
        )
        assert [sorted(ys) for ys in plotted] == [[0, 1, 1], [1, 1, 1]]
        await page.screenshot(path=screenshots / "rewards.png", full_page=True)

        # Workers and resources versions.
        await page.goto(base + "/dashboard/#/workers")
        await expect(page.locator("tr[data-worker-id]")).to_have_count(2)
        await page.screenshot(path=screenshots / "workers.png", full_page=True)
        await page.goto(base + "/dashboard/#/resources")
        resources = page.locator("tr[data-resources-id]")
        await expect(resources).to_have_count(2)
        await expect(resources.first).to_contain_text("policy-v2")
        await expect(resources.first).to_contain_text("latest")
        await expect(resources.nth(1)).to_contain_text("api_key: (set)")
        await expect(page.get_by_test_id("resources-table")).not_to_contain_text("sk-not-for-browsers")
        await page.screenshot(path=screenshots / "resources.png", full_page=True)

        # Live: a rollout run while the page is open appears, finished, with no reload.
        await page.goto(base + "/dashboard/#/rollouts")
        await expect(rows).to_have_count(6)
        await expect(page.get_by_test_id("live")).to_have_text("live")
        late = await run_batch(store, [("name a yak", "yak")], "policy-v2")
        fresh = page.locator(f'tr[data-rollout-id="{late[0]}"]')
        await expect(fresh).to_have_attribute("data-status", "succeeded")
        await expect(rows).to_have_count(7)
        await expect(page.locator('[data-stat="rollouts"]')).to_have_text("rollouts7")
        await page.screenshot(path=screenshots / "rollouts-live.png", full_page=True)
        assert errors == []
