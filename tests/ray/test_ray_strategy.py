"""The ray strategy on a real multi-node Ray cluster (three raylets on this machine): a Trainer
run across nodes, then a node lost mid-run. The store's own record is the witness: every rollout
ends exactly once, the lost node's attempts were given up and retried on the other node, Ray
restarted the lost runners there, and nothing of the run is left afterwards."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import ray
from conftest import RUNNER_SLOTS as RUNNER_SLOTS_PER_NODE
from conftest import RayCluster
from ray_agents import gated_agent
from ray_support import assert_each_exactly_once, index_of, node_of, plugin_manager, read_ledger
from support.certs import needs_openssl, self_signed

from agl_core import UnauthenticatedError
from agl_core.algorithm import algo, run_rollouts
from agl_core.client import GrpcStore
from agl_core.errors import UnavailableError
from agl_core.trainer import Trainer
from agl_core.types import AttemptStatus, RolloutStatus
from agl_plugins.strategies.on_ray.strategy import RayStrategy

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

RUNNERS = 4
ON_RUNNER_NODES = {"num_cpus": 0, "resources": {"agl_runner": 1}}
ON_HEAD = {"resources": {"agl_server": 1}}


def assert_nothing_left(address: str, data_dir: Path) -> None:
    """No actor of the run in the cluster, no agl-server process over its data directory."""
    connected_here = not ray.is_initialized()
    if connected_here:
        ray.init(address=address)
    try:
        left = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("agl-")]
        assert left == []
    finally:
        if connected_here:
            ray.shutdown()
    servers = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if "agl_server" in " ".join(p.info["cmdline"] or ()) and str(data_dir) in " ".join(p.info["cmdline"] or ())
    ]
    assert servers == []


def test_a_run_across_nodes_each_rollout_once_and_nothing_left(ray_cluster: RayCluster, tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    strategy = {
        "type": "ray",
        "address": ray_cluster.address,  # the strategy connects, and disconnects at the end
        "runner_resources": ON_RUNNER_NODES,
        "server_resources": ON_HEAD,
        "data_dir": str(data_dir),
        "keep_data": True,
    }
    trainer = Trainer(strategy=strategy, n_runners=RUNNERS, progress=False, plugin_manager=plugin_manager())
    assert isinstance(trainer.strategy, RayStrategy)
    result = trainer.fit(gated_agent, [{"i": i} for i in range(40)])
    assert result.status == "succeeded" and (result.train.succeeded, result.train.mean_reward) == (40, 0.5)
    assert not ray.is_initialized()  # the strategy's own connection is closed

    ledger = asyncio.run(read_ledger(data_dir))
    assert_each_exactly_once(ledger, 40)
    # The runners were spread over both runner nodes, none on the head (it offers no agl_runner).
    runner_nodes = {n.node_id[:12] for n in ray_cluster.runner_nodes}
    placed = {p["node_id"][:12] for p in trainer.strategy.placed}
    assert len(trainer.strategy.placed) == RUNNERS and placed == runner_nodes
    assert {node_of(w) for w in ledger.workers} == runner_nodes
    assert trainer.strategy.server_node_id == ray_cluster.head.node_id
    # Every runner left cleanly: the server saw its stream close.
    assert all(w.heartbeat_stats["connected"] is False for w in ledger.workers.values())
    assert_nothing_left(ray_cluster.address, data_dir)


def test_a_strict_spread_placement_group_puts_one_runner_per_node(ray_cluster: RayCluster, tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    strategy = RayStrategy(
        address=ray_cluster.address,
        runner_resources={"num_cpus": 0, "resources": {"agl_runner": 1}},
        placement_group="STRICT_SPREAD",
        server_resources=ON_HEAD,
        data_dir=data_dir,
    )
    trainer = Trainer(strategy=strategy, n_runners=2, progress=False, plugin_manager=plugin_manager())
    assert trainer.fit(gated_agent, [{"i": i} for i in range(10)]).train.succeeded == 10
    placed = sorted(p["node_id"] for p in strategy.placed)
    assert placed == sorted(n.node_id for n in ray_cluster.runner_nodes)
    ledger = asyncio.run(read_ledger(data_dir))
    assert_each_exactly_once(ledger, 10)
    assert_nothing_left(ray_cluster.address, data_dir)
    # The placement group went with the run (its bundles no longer hold the nodes' agl_runner).
    ray.init(address=ray_cluster.address)
    try:
        deadline = time.monotonic() + 60  # resource views reach the driver a moment after the removal
        while ray.available_resources().get("agl_runner") != 2 * RUNNER_SLOTS_PER_NODE:
            assert time.monotonic() < deadline, ray.available_resources()
            time.sleep(0.1)
    finally:
        ray.shutdown()


@pytest.mark.parametrize("ending", ["failure", "ctrl-c"])
def test_failure_and_ctrl_c_leave_nothing_behind(ray_cluster: RayCluster, tmp_path: Path, ending: str) -> None:
    data_dir = tmp_path / "store"

    @algo
    async def end_midrun(*, store: Any) -> None:
        # An attempt that never finishes by itself (its gate never opens), held by a runner.
        await store.enqueue_rollout({"i": 0, "gate": str(tmp_path / "never")}, rollout_id="held")
        async for event in store.watch_rollouts(rollout_ids=["held"], after_event_id=0):
            if event.new_status == RolloutStatus.RUNNING:
                break
        if ending == "ctrl-c":
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C: asyncio.run turns it into KeyboardInterrupt
            await asyncio.Event().wait()
        raise RuntimeError("the algorithm failed")

    strategy = RayStrategy(
        address=ray_cluster.address,
        runner_resources=ON_RUNNER_NODES,
        server_resources=ON_HEAD,
        data_dir=data_dir,
        keep_data=True,
        graceful_timeout=1.0,  # the held attempt never drains: killed after a second
    )
    trainer = Trainer(
        algorithm=end_midrun, strategy=strategy, n_runners=2, progress=False, plugin_manager=plugin_manager()
    )
    with pytest.raises(KeyboardInterrupt if ending == "ctrl-c" else RuntimeError):
        trainer.fit(gated_agent, [])
    assert not ray.is_initialized()
    assert_nothing_left(ray_cluster.address, data_dir)
    # The killed runners' attempts were given up before the server stopped (one, or two when the
    # other runner took the retry before it was killed too), none left running.
    ledger = asyncio.run(read_ledger(data_dir))
    statuses = [a.status for a in ledger.attempts["held"]]
    assert statuses and set(statuses) == {AttemptStatus.UNRESPONSIVE}, statuses


def test_a_node_lost_midrun_loses_nothing_and_counts_nothing_twice(ray_cluster: RayCluster, tmp_path: Path) -> None:
    # This process holds the connection (as verl's workers would): the strategy uses it and leaves it open.
    ray.init(address=ray_cluster.address)
    data_dir, gate = tmp_path / "store", tmp_path / "gate"
    tasks = [{"i": i, "gate": str(gate)} for i in range(24)]
    strategy = RayStrategy(
        runner_resources=ON_RUNNER_NODES, server_resources=ON_HEAD, data_dir=data_dir, keep_data=True
    )
    witness: dict[str, Any] = {}

    @algo
    async def lose_a_node_midway(*, store: Any, train_dataset: list[dict[str, Any]]) -> None:
        rollouts = await store.enqueue_rollouts(
            [{"input": task, "rollout_id": f"task-{i}"} for i, task in enumerate(train_dataset)]
        )
        # The victim: the node of runner 0. The gate holds every runner on an attempt meanwhile.
        victim = next(p for p in strategy.placed if p["worker_id"].startswith("ray-runner-0-"))["node_id"]
        node = next(n for n in ray_cluster.runner_nodes if n.node_id == victim)
        victims = {index_of(p["worker_id"]) for p in strategy.placed if p["node_id"] == victim}
        async with asyncio.timeout(120):
            while len(running := await store.query_rollouts(status_in=[RolloutStatus.RUNNING])) < RUNNERS:  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # no event says "every runner busy": re-read under the deadline
        held = {r.rollout_id for r in running if node_of(r.attempt.worker_id) == victim[:12]}
        assert len(held) == len(victims)
        await asyncio.to_thread(ray_cluster.cluster.remove_node, node, allow_graceful=False)
        ray_cluster.runner_nodes.remove(node)

        # Ray restarts the lost runners on the other node; wait until they serve there.
        async def restarted() -> set[int]:
            return {
                index_of(w.worker_id)
                for w in await store.query_workers()
                if node_of(w.worker_id) != victim[:12] and w.heartbeat_stats.get("connected")
            }

        async with asyncio.timeout(180):
            while not victims <= await restarted():  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # worker records have no watch: re-read under the deadline
        gate.touch()
        done = await store.wait_for_rollouts([r.rollout_id for r in rollouts], timeout=180)
        witness.update(victim=victim[:12], held=held, victims=victims, done=len(done))

    trainer = Trainer(
        algorithm=lose_a_node_midway,
        strategy=strategy,
        n_runners=RUNNERS,
        progress=False,
        plugin_manager=plugin_manager(),
    )
    trainer.fit(gated_agent, tasks)
    assert ray.is_initialized()  # not the strategy's connection: left open
    assert witness["done"] == len(tasks) and witness["victims"]

    ledger = asyncio.run(read_ledger(data_dir))
    assert_each_exactly_once(ledger, len(tasks))
    victim = witness["victim"]
    # The lost node's attempts were given up (their streams broke) and retried on the other node.
    given_up = [a for attempts in ledger.attempts.values() for a in attempts if a.status == AttemptStatus.UNRESPONSIVE]
    assert {a.rollout_id for a in given_up} == witness["held"]
    assert all(node_of(a.worker_id) == victim for a in given_up)
    for attempt in given_up:
        retry = ledger.attempts[attempt.rollout_id][-1]
        assert retry.status == AttemptStatus.SUCCEEDED and node_of(retry.worker_id) != victim
    # Runners that lived on the lost node served again elsewhere, as new workers.
    elsewhere = {index_of(w) for w in ledger.workers if node_of(w) != victim}
    assert witness["victims"] <= elsewhere and len(ledger.workers) == RUNNERS + len(witness["victims"])
    assert_nothing_left(ray_cluster.address, data_dir)


@needs_openssl
def test_a_token_and_tls_reach_the_server_the_runners_and_the_algorithm(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path, "DNS:localhost")
    data_dir = tmp_path / "store"
    strategy = RayStrategy(
        address=ray_cluster.address,
        runner_resources=ON_RUNNER_NODES,
        server_resources=ON_HEAD,
        data_dir=data_dir,
        keep_data=True,
        # One machine: every node reaches the server at the name its certificate carries.
        host="127.0.0.1",
        advertise_host="localhost",
        token="ray-strategy-test-token",
        server_args=["--tls-cert", str(cert), "--tls-key", str(key)],
        tls=True,
        root_certificates=cert,
    )
    refused: list[str] = []

    @algo
    async def through_the_door(*, store: Any, train_dataset: list[dict[str, Any]]) -> None:
        # The server the strategy started asks for the token, and speaks TLS only.
        roots = cert.read_bytes()
        wrong = GrpcStore(store.address, tls=True, root_certificates=roots, token="wrong", retry_deadline=0)
        async with wrong as other:
            with pytest.raises(UnauthenticatedError):
                await other.query_rollouts()
            refused.append("token")
        async with GrpcStore(store.address, token="ray-strategy-test-token", retry_deadline=0, timeout=5) as plain:
            with pytest.raises(UnavailableError):
                await plain.query_rollouts()
            refused.append("plaintext")
        await run_rollouts(store, train_dataset)

    trainer = Trainer(
        algorithm=through_the_door, strategy=strategy, n_runners=2, progress=False, plugin_manager=plugin_manager()
    )
    trainer.fit(gated_agent, [{"i": i} for i in range(8)])
    assert refused == ["token", "plaintext"]
    ledger = asyncio.run(read_ledger(data_dir))
    assert_each_exactly_once(ledger, 8)
    # The runner actors took the work (over TLS, with the token): the store names them.
    assert {w for w in ledger.workers if w.startswith("ray-runner-")} == {p["worker_id"] for p in strategy.placed}
    assert len(strategy.placed) == 2
    assert_nothing_left(ray_cluster.address, data_dir)
