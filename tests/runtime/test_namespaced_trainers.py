"""Two Trainers training at once on one agl-server, each in its own namespace: each gets only its
own rollouts, results and resources."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from runtime_agents import experiment_probe

from agl_core.client import GrpcStore
from agl_core.trainer import FitResult, Trainer
from agl_core.types import PromptTemplate, RolloutStatus
from agl_plugins.strategies.cs import ClientServerStrategy
from agl_server.process import ServerProcess

SIZES = {"exp-a": 24, "exp-b": 16}


def fit(server: ServerProcess, namespace: str) -> FitResult:
    trainer = Trainer(
        strategy=ClientServerStrategy(server_address=server.address),
        n_runners=1,
        runner_capacity=4,
        namespace=namespace,
        initial_resources={"prompt": PromptTemplate(template=f"{namespace}: {{x}}")},
        progress=False,
    )
    dataset = [{"experiment": namespace, "n": i} for i in range(SIZES[namespace])]
    return trainer.fit(experiment_probe, dataset)


def test_two_trainers_on_one_server_keep_their_work_and_resources_apart(server: ServerProcess) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {ns: pool.submit(fit, server, ns) for ns in SIZES}
        results = {ns: future.result(timeout=600) for ns, future in futures.items()}
    for namespace, result in results.items():
        assert result.train is not None
        # Only its own rollouts were counted, and every one ran with its own experiment's prompt
        # (the agent rewards 1 only then).
        assert (result.train.rollouts, result.train.succeeded) == (SIZES[namespace], SIZES[namespace]), namespace
        assert result.mean_reward == 1.0, namespace

    async def stored() -> dict[str, tuple[set[str], set[str | None], set[str], str]]:
        store = GrpcStore(server.address)
        try:
            out = {}
            for namespace in SIZES:
                scoped = store.with_namespace(namespace)
                rollouts = list(await scoped.query_rollouts(limit=1000))
                latest = await scoped.get_latest_resources()
                assert latest is not None
                out[namespace] = (
                    {r.input["experiment"] for r in rollouts},
                    {r.resources_id for r in rollouts},
                    {r.status for r in rollouts},
                    latest.resources_id,
                )
                assert len(rollouts) == SIZES[namespace]
            assert (await store.query_rollouts()).total == 0  # nothing leaked into the default namespace
            assert await store.get_latest_resources() is None
            return out
        finally:
            await store.close()

    seen = asyncio.run(stored())
    for namespace, (experiments, resources_ids, statuses, latest_id) in seen.items():
        assert experiments == {namespace}
        assert resources_ids == {latest_id}  # pinned at enqueue to the namespace's own set
        assert statuses == {RolloutStatus.SUCCEEDED}
    assert seen["exp-a"][3] != seen["exp-b"][3]
