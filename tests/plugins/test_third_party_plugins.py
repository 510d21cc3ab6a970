"""Third-party plugin packages installed with pip, used by the Trainer, agl-server and ``agl plugins``.

The packages (each with its own pyproject.toml, next to this file) are installed with
``pip install --target`` into a temporary directory that the subprocesses under test get on
their PYTHONPATH, so the development environment is left as it was.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.raw_worker import RawWorker, idle_worker

from agl_core.client import GrpcStore
from agl_core.proto import types_pb2 as t
from agl_core.types import RolloutStatus, new_span
from agl_server.process import ServerProcess

HERE = Path(__file__).parent
RUNTIME_TESTS = HERE.parent / "runtime"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with agl-sample-plugin, agl-broken-plugin and agl-conflicting-plugin installed in it by pip."""
    sources = tmp_path_factory.mktemp("sources")
    target = tmp_path_factory.mktemp("site")
    packages = []
    for name in ("agl_sample_plugin", "agl_broken_plugin", "agl_conflicting_plugin"):
        # Built from a copy: setuptools leaves build/ and *.egg-info behind in the source tree.
        packages.append(shutil.copytree(HERE / name, sources / name))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            *map(str, packages),
        ],
        check=True,
    )
    assert (target / "agl_sample_plugin").is_dir()
    return target


def env_with(site: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(RUNTIME_TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def agl(site: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agl_core.cli", *args],
        env=env_with(site, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_agl_plugins_lists_the_installed_plugins_and_names_the_broken_one(site: Path) -> None:
    listing = agl(site, "plugins")
    assert listing.returncode == 1  # a broken plugin makes the check fail
    assert "sample" in listing.stdout and "agl-sample-plugin 0.1.0" in listing.stdout
    assert "algorithms: sample-algo" in listing.stdout and "store backends: sample-relay" in listing.stdout
    assert "lifecycle hooks: agl_on_rollout_end" in listing.stdout
    assert "execution strategies: cs" in listing.stdout and "store backends: lmdb" in listing.stdout
    [error] = [line for line in listing.stderr.splitlines() if "'broken'" in line]
    assert "agl plugin 'broken' (from agl-broken-plugin 0.1.0) failed to load" in error
    assert "ModuleNotFoundError" in error and "agl_dependency_that_is_not_installed" in error

    as_json = json.loads(agl(site, "plugins", "--json").stdout)
    sample = next(p for p in as_json["plugins"] if p["name"] == "sample")
    assert sample["provides"] == {"algorithms": ["sample-algo"], "store_backends": ["sample-relay"]}
    assert sample["module"] == "agl_sample_plugin"
    assert [f["name"] for f in as_json["failures"]] == ["broken"]

    blocked = agl(site, "plugins", AGL_DISABLE_PLUGINS="broken,conflicting")
    assert blocked.returncode == 0, blocked.stderr
    assert "broken" not in blocked.stdout + blocked.stderr and "conflict" not in blocked.stdout + blocked.stderr


def test_agl_plugins_reports_a_name_two_plugins_provide(site: Path) -> None:
    listing = agl(site, "plugins", AGL_DISABLE_PLUGINS="broken")
    assert listing.returncode == 1  # a conflict fails the check, like a broken plugin
    assert "algorithms: baseline, unloadable" in listing.stdout
    [line] = [line for line in listing.stderr.splitlines() if "algorithm 'baseline' is provided by both" in line]
    assert "plugin 'algorithm-baseline' (agl 0.1.0)" in line
    assert "plugin 'conflicting' (agl-conflicting-plugin 0.1.0)" in line
    # Listing did not import the factories the plugin names by import path (that module raises).
    assert "was imported" not in listing.stdout + listing.stderr

    as_json = json.loads(agl(site, "plugins", "--json", AGL_DISABLE_PLUGINS="broken").stdout)
    [conflict] = as_json["conflicts"]
    assert (conflict["kind"], conflict["name"]) == ("algorithms", "baseline")
    assert sorted(conflict["plugins"]) == ["algorithm-baseline", "conflicting"]


def test_a_conflict_fails_only_the_lookup_of_that_name(site: Path, tmp_path: Path) -> None:
    script = """
import json
from agl_core.plugins import PluginError
from agl_core.trainer import Trainer

outcome = {}
for name in ("baseline", "unloadable", "sample-algo", "apo"):
    try:
        Trainer(algorithm=name, progress=False)
        outcome[name] = "ok"
    except PluginError as exc:
        outcome[name] = str(exc)
print(json.dumps(outcome))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], env=env_with(site), capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["sample-algo"] == "ok" and outcome["apo"] == "ok"
    assert "algorithm 'baseline' is provided by both" in outcome["baseline"]
    assert "'algorithm-baseline' (agl 0.1.0)" in outcome["baseline"]
    assert "'conflicting' (agl-conflicting-plugin 0.1.0)" in outcome["baseline"]
    assert "AGL_DISABLE_PLUGINS" in outcome["baseline"]
    # A factory named by import path is imported at lookup; its failure names the plugin and the path.
    assert outcome["unloadable"].startswith(
        "algorithm 'unloadable' of plugin 'conflicting' (agl-conflicting-plugin 0.1.0) could not be loaded "
        "from 'agl_conflicting_plugin.heavy:Unloadable': ImportError"
    )


@pytest.mark.parametrize("strategy", ["shm", "cs"])
def test_trainer_picks_the_third_party_algorithm_by_name(site: Path, tmp_path: Path, strategy: str) -> None:
    log = tmp_path / "rollout-ends.log"
    script = f"""
import json
from agl_core.trainer import Trainer
from runtime_agents import parity_agent

if __name__ == "__main__":
    trainer = Trainer(algorithm={{"type": "sample-algo", "tag": "third-party"}}, strategy="{strategy}",
                      n_runners=2, progress=False)
    print(json.dumps(trainer.fit(parity_agent, list(range(10))).result))
"""
    (tmp_path / "train.py").write_text(script)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "train.py")],
        env=env_with(site, AGL_SAMPLE_PLUGIN_LOG=str(log)),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"algorithm": "third-party", "rollouts": 10, "mean_reward": 0.5}
    # The broken plugin was reported once, by name (not again by every runner), and everything else went on.
    assert done.stderr.count("agl plugin 'broken' (from agl-broken-plugin 0.1.0) failed to load") == 1
    # The plugin's lifecycle hook ran inside the runners, once per attempt.
    lines = log.read_text().splitlines()
    assert len(lines) == 10 and all(" succeeded " in line for line in lines)


async def test_agl_server_serves_despite_a_broken_plugin(site: Path, data_dir: Path) -> None:
    server = ServerProcess(data_dir, env=env_with(site), log_path=data_dir.parent / "server.log").start()
    try:
        store = GrpcStore(server.address)
        rollout = await store.enqueue_rollout("still works")
        assert (await store.get_rollout(rollout.rollout_id)) is not None
        await store.close()
        assert "agl plugin 'broken' (from agl-broken-plugin 0.1.0) failed to load" in server.log_tail(200)
    finally:
        server.stop()


async def test_a_third_party_store_backend_serves_work_and_spans(site: Path, tmp_path: Path) -> None:
    """agl-server over ``sample-relay`` (a plugin's store backend with only the StoreBackend
    protocol: work is claimed stream by stream, spans go through ``ingest_spans``), everything
    kept by an upstream agl-server."""
    upstream = ServerProcess(tmp_path / "upstream", log_path=tmp_path / "upstream.log").start()
    relay = ServerProcess(
        tmp_path / "relay",
        args=["--store", "sample-relay", "--store-option", f"upstream={upstream.address}"],
        env=env_with(site),
        log_path=tmp_path / "relay.log",
    )
    stores: list[GrpcStore] = []
    worker: RawWorker | None = None
    try:
        relay.start()
        store = GrpcStore(relay.address)
        stores.append(store)
        await store.enqueue_rollout({"x": 1}, rollout_id="relayed")
        worker = RawWorker(relay.address)
        await worker.hello(worker_id="w-relay", capacity=2)
        assignment = await worker.assignment()
        assert assignment.rollout.rollout_id == "relayed"
        attempt_id = assignment.rollout.attempt.attempt_id
        assert (await worker.report(assignment, t.ATTEMPT_STATUS_RUNNING)).code == 0
        spans = [new_span(f"step-{i}", rollout_id="relayed", attempt_id=attempt_id) for i in range(3)]
        spans.append(new_span("lost", rollout_id="nowhere", attempt_id="a-none"))
        result = await store.add_spans(spans)
        assert result.accepted == 3 and [index for index, _ in result.rejected] == [3], result
        assert (await store.add_spans(spans[:1])).duplicates == 1
        assert (await worker.report(assignment, t.ATTEMPT_STATUS_SUCCEEDED)).code == 0
        # A rollout queued while the stream waits reaches it too (the relay follows the upstream's events).
        await store.enqueue_rollout({"x": 2}, rollout_id="relayed-later")
        later = await worker.assignment()
        assert later.rollout.rollout_id == "relayed-later"

        # Everything is in the upstream store, and reads back the same through the relay.
        direct = GrpcStore(upstream.address)
        stores.append(direct)
        rollout = await direct.get_rollout("relayed")
        assert rollout is not None and rollout.status == RolloutStatus.SUCCEEDED
        assert rollout.attempt is not None and rollout.attempt.worker_id == "w-relay"
        names = [span.name for span in await direct.query_spans("relayed")]
        assert names == ["step-0", "step-1", "step-2"]
        assert [span.name for span in await store.query_spans("relayed")] == names
    finally:
        if worker is not None:
            await worker.close()
        for opened in stores:
            await opened.close()
        relay.stop()
        upstream.stop()


async def test_a_third_party_backend_claims_once_per_rollout_not_once_per_waiting_stream(
    site: Path, tmp_path: Path
) -> None:
    """With a backend that cannot count what is queued (sample-relay), the dispatcher claims stream
    by stream; a claim that comes back short means the route's queue is empty, so the streams
    after it are not asked. Each claim is a round trip to the upstream server, and a stream's work
    waited for all the claims of its round: asking every waiting stream made 30 streams joining
    one by one cost 350-390 claims (each join a round over all of them) and one rollout 8-29."""
    upstream = ServerProcess(tmp_path / "upstream", log_path=tmp_path / "upstream.log").start()
    relay = ServerProcess(
        tmp_path / "relay",
        args=["--store", "sample-relay", "--store-option", f"upstream={upstream.address}", "--log-level", "debug"],
        env=env_with(site),
        log_path=tmp_path / "relay.log",
    )
    workers: list[RawWorker] = []
    store: GrpcStore | None = None
    try:
        relay.start()
        store = GrpcStore(relay.address)
        for i in range(30):
            await idle_worker(relay.address, store, f"w-{i:02d}", workers)
        joined = before = relayed_claims(relay)

        rollout = await store.enqueue_rollout({"task": "one"})
        done, pending = await asyncio.wait(
            [asyncio.ensure_future(worker.assignment(within=30)) for worker in workers],
            return_when=asyncio.FIRST_COMPLETED,
        )
        for waiting in pending:
            waiting.cancel()
        assert next(iter(done)).result().rollout.rollout_id == rollout.rollout_id

        # About two claims per stream joining; for the rollout, the claim that got it, the short one
        # after it and the next round's (a round under way when it was queued may add one or two).
        claims = relayed_claims(relay) - before
        assert 30 <= joined <= 100, f"{joined} claims relayed while 30 streams joined"
        assert 1 <= claims <= 6, f"{claims} claims relayed for one rollout handed to one of 30 waiting streams"
        assert [w for w in workers if not w.inbox.empty()] == []  # nobody else got it
    finally:
        for worker in workers:
            await worker.close()
        if store is not None:
            await store.close()
        relay.stop()
        upstream.stop()


def relayed_claims(relay: ServerProcess) -> int:
    """Claims the relay has sent upstream so far (its debug log)."""
    return Path(relay.log_path).read_text().count("sample-relay: DequeueRollout")
