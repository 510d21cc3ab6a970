"""A multi-node Ray cluster on this machine (Ray's own ``ray.cluster_utils.Cluster``): a head node
that offers the custom resource ``agl_server`` (the node with agl-server's disk) and two nodes
that offer ``agl_runner`` (where runners go). Every node has one CPU and a small object store:
the machine is shared."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray_agents

OBJECT_STORE_BYTES = 80 * 1024 * 1024  # Ray's minimum is 75 MiB
RUNNER_SLOTS = 4  # agl_runner per runner node: either node can take every runner alone
# A lost node is noticed in about a second (Ray's defaults: ~15 s of missed health checks).
FAST_NODE_DEATH = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 300,
    "health_check_failure_threshold": 3,
}


@dataclass
class RayCluster:
    cluster: Any
    head: Any
    runner_nodes: list[Any]

    @property
    def address(self) -> str:
        return str(self.cluster.address)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    # Agents travel by import path: the nodes' Ray workers (started with this environment) get
    # this directory on their path, as a real cluster's nodes have the agent's code installed.
    here = str(Path(ray_agents.__file__).parent)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, saved) if p)
    common = {"num_cpus": 1, "object_store_memory": OBJECT_STORE_BYTES}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            **common,
            "resources": {"agl_server": 1},
            "include_dashboard": False,
            "_system_config": FAST_NODE_DEATH,
        },
    )
    try:
        nodes = [cluster.add_node(**common, resources={"agl_runner": RUNNER_SLOTS}) for _ in range(2)]
        cluster.wait_for_nodes()
        yield RayCluster(cluster, cluster.head_node, nodes)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
