"""The inspection commands see one namespace (experiment) at a time, or all with --all-namespaces."""

from __future__ import annotations

import asyncio
from typing import Any

from agl_core.client import GrpcStore
from agl_server.process import ServerProcess


def test_listings_are_scoped_to_the_namespace_asked_for(server: ServerProcess, agl: Any) -> None:
    async def enqueue() -> dict[str, str]:
        store = GrpcStore(server.address)
        try:
            ids = {}
            for namespace in ("exp-a", "exp-b", ""):
                [rollout] = await store.with_namespace(namespace).enqueue_rollouts([{"input": namespace}])
                ids[namespace] = rollout.rollout_id
            return ids
        finally:
            await store.close()

    ids = asyncio.run(enqueue())

    def listed(*args: str) -> set[str]:
        done = agl("rollouts", "list", "--server", server.address, "--json", *args)
        assert done.code == 0, done.err
        return {item["rollout_id"] for item in done.json()["items"]}

    assert listed() == {ids[""]}
    assert listed("--namespace", "exp-a") == {ids["exp-a"]}
    assert listed("--all-namespaces") == set(ids.values())
    # An id finds its rollout whatever the namespace asked for.
    shown = agl("rollouts", "show", ids["exp-b"], "--server", server.address, "--json")
    assert shown.code == 0, shown.err
    assert shown.json()["rollout"]["namespace"] == "exp-b"
    bad = agl("rollouts", "list", "--server", server.address, "--namespace", "Not A Name")
    assert bad.code == 2 and "--namespace" in bad.err and "namespace" in bad.err
