"""``examples/ray``: ``train.py`` run as its docstring says, submitted as a Ray job with the
directory as its ``working_dir`` to a cluster whose head offers ``agl_server`` (and the job
server) and whose worker node offers ``agl_runner``, given the data directory, the token and the
TLS files by environment as the KubeRay manifests give them; and the manifests agree with it.

Kubernetes itself is not here: the manifests are checked for what the example relies on, not
applied."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray_support import assert_each_exactly_once, read_ledger
from support.certs import needs_openssl, self_signed
from support.waits import until

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

EXAMPLE = Path(__file__).parents[2] / "examples" / "ray"
OBJECT_STORE_BYTES = 80 * 1024 * 1024
TASKS = 40


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def job_cluster() -> Iterator[str]:
    """A head node with the dashboard (Ray's job server) and ``agl_server``, a worker node with
    ``agl_runner`` slots; yields the job server's address."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as patch:
        # The job's ``python`` is the one on the nodes' PATH: this environment's, where agl is
        # installed, as a real cluster's image has it.
        patch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
        port = free_port()
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                "object_store_memory": OBJECT_STORE_BYTES,
                "resources": {"agl_server": 1},
                "include_dashboard": True,
                "dashboard_host": "127.0.0.1",
                "dashboard_port": port,
            },
        )
        try:
            cluster.add_node(num_cpus=2, object_store_memory=OBJECT_STORE_BYTES, resources={"agl_runner": 4})
            cluster.wait_for_nodes()
            yield f"http://127.0.0.1:{port}"
        finally:
            if ray.is_initialized():
                ray.shutdown()
            cluster.shutdown()


@needs_openssl
async def test_train_py_runs_as_a_ray_job_with_token_and_tls(job_cluster: str, tmp_path: Path) -> None:
    from ray.job_submission import JobSubmissionClient

    # cert-manager's file names; a self-signed certificate is its own CA.
    tls = tmp_path / "tls"
    tls.mkdir()
    cert, key = self_signed(tls)
    shutil.copy(cert, tls / "tls.crt")
    shutil.copy(cert, tls / "ca.crt")
    shutil.copy(key, tls / "tls.key")
    data = tmp_path / "agl-data"
    env = {
        "AGL_DATA_DIR": str(data),
        "AGL_TOKEN": "example-token-0123456789abcdef",
        "AGL_TLS_DIR": str(tls),
        "AGL_SERVER_NAME": "localhost",
    }

    clients: list[Any] = []

    async def job_server_up() -> bool:  # it starts a little after the head node
        client = await asyncio.to_thread(_job_client, JobSubmissionClient, job_cluster)
        clients.extend([client] if client is not None else [])
        return client is not None

    await until(job_server_up, timeout=60, what="Ray's job server answering")
    client = clients[-1]
    job = client.submit_job(
        entrypoint=f"python train.py --runners 2 --tasks {TASKS}",
        runtime_env={"working_dir": str(EXAMPLE), "env_vars": env},
    )
    logs: list[str] = []
    async with asyncio.timeout(240):
        async for lines in client.tail_job_logs(job):  # ends with the job
            logs.append(lines)
    status = client.get_job_status(job)
    assert str(status.value) == "SUCCEEDED", "".join(logs)[-4000:]

    # The store the job's agl-server kept on the head node's disk: every task ran exactly once,
    # and the parity agent's reward is 1 for the even ones.
    ledger = await read_ledger(data)
    assert_each_exactly_once(ledger, TASKS)
    inputs = sorted(int(r.input) for r in ledger.rollouts.values())
    assert inputs == list(range(TASKS))
    workers = {a.worker_id for attempts in ledger.attempts.values() for a in attempts}
    assert len(workers) == 2 and all(w.startswith("ray-runner-") for w in workers), workers


def _job_client(factory: Any, address: str) -> Any:
    """The job client once the job server answers (it starts after the head), else None."""
    try:
        return factory(address)
    except Exception:
        return None


def test_the_kuberay_manifests_run_the_example_where_its_strategy_puts_things() -> None:
    """What train.py asks of the cluster is what raycluster.yaml and rayjob.yaml offer: only the
    head offers ``agl_server`` and has the data volume and the token; the worker groups offer
    ``agl_runner``; the RayJob runs train.py."""
    cluster = [doc for doc in yaml.safe_load_all((EXAMPLE / "raycluster.yaml").read_text()) if doc]
    claim = next(doc for doc in cluster if doc["kind"] == "PersistentVolumeClaim")
    ray_cluster = next(doc for doc in cluster if doc["kind"] == "RayCluster")
    ray_job = yaml.safe_load((EXAMPLE / "rayjob.yaml").read_text())
    assert ray_job["kind"] == "RayJob"
    assert ray_job["spec"]["entrypoint"].startswith("python /app/train.py ")

    for spec in (ray_cluster["spec"], ray_job["spec"]["rayClusterSpec"]):
        head = spec["headGroupSpec"]
        assert _custom_resources(head) == {"agl_server": 1}
        container = head["template"]["spec"]["containers"][0]
        names = {entry["name"]: entry for entry in container["env"]}
        assert names["AGL_DATA_DIR"]["value"].startswith("/data/")
        assert names["AGL_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "agl-token"
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in head["template"]["spec"]["volumes"]}
        assert volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        for group in spec["workerGroupSpecs"]:
            slots = _custom_resources(group)
            assert set(slots) == {"agl_runner"} and slots["agl_runner"] <= int(group["rayStartParams"]["num-cpus"])


def _custom_resources(group: dict[str, Any]) -> dict[str, int]:
    """A group's ``rayStartParams.resources``: JSON inside a quoted string, as KubeRay takes it."""
    import json

    return dict(json.loads(json.loads(group["rayStartParams"]["resources"])))


def test_the_job_sees_the_strategy_the_docstring_describes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """train.py's strategy spec from its environment, without a cluster: data dir and token as
    given, TLS only with AGL_TLS_DIR, and then under AGL_SERVER_NAME."""
    monkeypatch.syspath_prepend(str(EXAMPLE))  # for its ``from parity_agent import parity``
    spec = importlib.util.spec_from_file_location("ray_example_train", EXAMPLE / "train.py")
    assert spec is not None and spec.loader is not None
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)

    monkeypatch.setenv("AGL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AGL_TOKEN", "t0ken")
    monkeypatch.delenv("AGL_TLS_DIR", raising=False)
    plain = train.strategy(3)
    assert plain["n_runners"] == 3 and plain["data_dir"] == str(tmp_path) and plain["token"] == "t0ken"
    assert "tls" not in plain
    (tmp_path / "ca.crt").write_bytes(b"pem")
    monkeypatch.setenv("AGL_TLS_DIR", str(tmp_path))
    monkeypatch.setenv("AGL_SERVER_NAME", "agl-head")
    tls = train.strategy(3)
    assert tls["tls"] is True and tls["root_certificates"] == b"pem" and tls["advertise_host"] == "agl-head"
    assert tls["server_args"] == ["--tls-cert", f"{tmp_path}/tls.crt", "--tls-key", f"{tmp_path}/tls.key"]
