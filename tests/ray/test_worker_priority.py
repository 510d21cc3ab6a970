"""The workers of a job that agl connects run at the driver's CPU priority, not Ray's niceness 15.

The driver is a subprocess started three steps nicer than this process (a niceness cannot be
undone without privileges, and it is what is asked: the workers follow the driver, whatever it
is). It connects to the module's cluster the way the ray strategy does and reports the niceness
its task and its actor run at; then again with a niceness the caller chose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import RayCluster

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

DRIVER = """
import json, os, sys
import ray
from agl_plugins.strategies.on_ray.cluster import connect

@ray.remote(num_cpus=0)
def task_niceness():
    return os.nice(0)

@ray.remote(num_cpus=0)
class Actor:
    def niceness(self):
        return os.nice(0)

report = {"driver": os.nice(0)}
for case, init_args in (("default", {}), ("chosen", json.loads(sys.argv[2]))):
    connection = connect(sys.argv[1], init_args)
    try:
        report[case] = [ray.get(task_niceness.remote()), ray.get(Actor.remote().niceness.remote())]
    finally:
        connection.close()
print(json.dumps(report))
"""

RAYS_DEFAULT = 15


def test_workers_run_at_the_drivers_niceness_unless_the_caller_chose(ray_cluster: RayCluster) -> None:
    driver = os.nice(0) + 3
    assert driver != RAYS_DEFAULT, "this process's niceness leaves no difference to see"
    chosen = driver + 1
    init_args = {"runtime_env": {"env_vars": {"RAY_worker_niceness": str(chosen)}}}
    env = {k: v for k, v in os.environ.items() if k != "RAY_worker_niceness"}
    run = subprocess.run(
        ["nice", "-n", "3", sys.executable, "-c", DRIVER, ray_cluster.address, json.dumps(init_args)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report == {"driver": driver, "default": [driver, driver], "chosen": [chosen, chosen]}
