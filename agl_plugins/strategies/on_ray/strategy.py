"""The ``ray`` execution strategy: agl-server and runners as Ray actors spread over a Ray cluster.

``Trainer(strategy="ray")`` or ``{"type": "ray", "address": ..., "n_runners": N, "runner_resources":
{...}}``: connect to Ray (or start a local cluster), start agl-server as an actor on a node (its
data directory on that node's disk) or use one by ``server_address``, start N runner actors
placed by their resources (``SPREAD`` over the nodes, or a placement group), and run the
algorithm here against the server.

Failures: a runner actor whose process or node dies is restarted by Ray (``max_restarts``) on a
node with room for it, and its ``run`` call resumes there (``max_task_retries``). agl-server saw
the dead runner's Work stream break and gave its attempts up (``unresponsive``): the rollouts'
retry policy (``RolloutConfig``) sends them to other runners. Nothing is lost or counted twice:
the store ends every rollout once, whatever the runners do.

Shutdown (end of run, error, Ctrl-C): runners drain (``graceful_timeout``; on Ctrl-C not at
all), then every actor is killed without restart, the placement group removed, the server
stopped once it has seen the killed runners go (so the attempts they held end ``unresponsive``),
and Ray disconnected if the strategy connected it (which ends a local cluster it started). Actors
are owned by this driver, so Ray also ends them if this process dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agl_core.client import GrpcStore
from agl_core.execution import departures, runner_process
from agl_core.execution.base import AlgorithmBundle, ExecutionStrategy, RunnerSpec
from agl_plugins.strategies.on_ray.cluster import connect, require_ray

logger = logging.getLogger(__name__)

PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory", "resources", "accelerator_type")


class RayStrategy(ExecutionStrategy):
    """agl-server and runners as Ray actors (see the module documentation).

    :param n_runners: runner actors.
    :param address: the Ray cluster (``"auto"``, ``"host:6379"``, ``"ray://host:10001"``); None:
        the connection the process has, else ``RAY_ADDRESS``, else a new local cluster.
    :param init_args: further ``ray.init`` arguments (``namespace``, ``runtime_env``, ``num_cpus``
        of a local cluster, ...), used only when the strategy connects.
    :param runner_resources: each runner actor's resources: ``num_cpus`` (default 1), ``num_gpus``,
        ``memory``, ``resources`` (custom, e.g. ``{"agl_runner": 1}`` to keep runners on the
        nodes that offer it), ``accelerator_type``.
    :param placement_group: None: each actor ``SPREAD`` over the nodes (best effort); or a
        placement group strategy (``SPREAD``, ``STRICT_SPREAD``, ``PACK``, ``STRICT_PACK``) with
        one bundle of ``runner_resources`` per runner, reserved before any runner starts.
    :param max_restarts: how often Ray restarts a runner actor that died (-1: always).
    :param server_address: an agl-server to use instead of starting one (``host:port``).
    :param server_resources: the server actor's placement (same keys as ``runner_resources``,
        e.g. ``{"resources": {"agl_server": 1}}`` for the node with the disk); default: this
        driver's node.
    :param data_dir: the server's data directory on its node (default: a temporary one, removed
        at the end unless ``keep_data``).
    :param host: the interface the server binds (default: its node's IP, which other nodes reach;
        ``0.0.0.0`` for all).
    :param advertise_host: the host the runners and the algorithm use to reach the started server
        (default: its node's IP); with TLS, a name its certificate carries.
    :param port: the server's port (0: a free one).
    :param server_args: further ``agl-server`` arguments (``["--tls-cert", ..., "--tls-key", ...]``).
    :param token: the server's bearer token (given to the server by environment).
    :param tls: runners and the algorithm talk TLS to the server.
    :param root_certificates: PEM roots to check the server's certificate against (bytes or a
        path on the driver; the system roots when None).
    :param graceful_timeout: seconds runners get to finish their attempts at the end.
    :param runner_start_timeout: seconds to wait for the runners to connect before the algorithm
        starts anyway (with a warning).
    :param runner_log_level: log level in the runner actors (their logs reach the driver).
    """

    name = "ray"

    def __init__(
        self,
        n_runners: int = 1,
        *,
        address: str | None = None,
        init_args: Mapping[str, Any] | None = None,
        runner_resources: Mapping[str, Any] | None = None,
        placement_group: str | None = None,
        max_restarts: int = 4,
        server_address: str | None = None,
        server_resources: Mapping[str, Any] | None = None,
        data_dir: str | Path | None = None,
        keep_data: bool = False,
        host: str | None = None,
        advertise_host: str | None = None,
        port: int = 0,
        server_args: Sequence[str] = (),
        token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | str | Path | None = None,
        graceful_timeout: float = 30.0,
        runner_start_timeout: float = 120.0,
        runner_log_level: str = "WARNING",
    ) -> None:
        require_ray()  # here, so that Trainer(strategy="ray") says at once what to install
        if n_runners < 1:
            raise ValueError(f"n_runners is {n_runners}; start at least one runner")
        if placement_group is not None and placement_group.upper() not in PLACEMENT_STRATEGIES:
            raise ValueError(f"placement_group is {placement_group!r}; use one of {', '.join(PLACEMENT_STRATEGIES)}")
        for name, given in (("runner_resources", runner_resources), ("server_resources", server_resources)):
            unknown = set(given or {}) - set(RESOURCE_KEYS)
            if unknown:
                raise ValueError(f"{name} has {sorted(unknown)}; the keys are {', '.join(RESOURCE_KEYS)}")
        self.n_runners = n_runners
        self.address = address
        self.init_args = dict(init_args or {})
        self.runner_resources = {"num_cpus": 1, **dict(runner_resources or {})}
        self.placement_group = placement_group.upper() if placement_group else None
        self.max_restarts = max_restarts
        self.server_address = server_address
        self.server_resources = dict(server_resources) if server_resources is not None else None
        self.data_dir = str(data_dir) if data_dir is not None else None
        self.keep_data = keep_data
        self.host = host
        self.advertise_host = advertise_host
        self.port = port
        self.server_args = list(server_args)
        self.token = token
        self.tls = tls
        if isinstance(root_certificates, (str, Path)):
            root_certificates = Path(root_certificates).read_bytes()
        self.root_certificates = root_certificates
        self.graceful_timeout = graceful_timeout
        self.runner_start_timeout = runner_start_timeout
        self.runner_log_level = runner_log_level
        # What the last run placed, for callers that look (tests, tools): {"worker_id", "node_id"} per runner.
        self.placed: list[dict[str, Any]] = []
        self.server_node_id: str | None = None

    # --- the run -----------------------------------------------------------------------------------

    def execute(self, algorithm: AlgorithmBundle | None, runner: RunnerSpec, *, store: Any = None) -> Any:
        if algorithm is None:
            raise ValueError("the ray strategy runs the algorithm in this process; give it one")
        address, token = self.server_address, self.token
        if isinstance(store, GrpcStore):
            address, token = store.address, token or store.backend.config.token
        elif store is not None:
            raise TypeError(
                "the ray strategy keeps its store in agl-server; give no store, a GrpcStore of a running "
                "server, or strategy={'type': 'ray', 'server_address': 'host:port'}"
            )
        ray = require_ray()
        from agl_plugins.strategies.on_ray.actors import RUNNER_ID_PREFIX, RunnerActor, ServerActor

        connection = connect(self.address, self.init_args)
        run_id = uuid.uuid4().hex[:8]
        server: Any = None
        group: Any = None
        runners: list[Any] = []
        runs: list[Any] = []
        aborted = False
        try:
            if address is None:
                server = (
                    ray.remote(ServerActor)
                    .options(name=f"agl-{run_id}-server", max_restarts=0, **self._server_placement(ray))
                    .remote(
                        self.data_dir,
                        keep_data=self.keep_data,
                        host=self.host,
                        port=self.port,
                        args=self.server_args,
                        token=token,
                        advertise_host=self.advertise_host,
                    )
                )
                try:
                    address, data_dir, self.server_node_id = ray.get(
                        server.start.remote(), timeout=self.runner_start_timeout
                    )
                except ray.exceptions.GetTimeoutError:
                    raise RuntimeError(
                        f"agl-server's actor did not start within {self.runner_start_timeout:g}s: does a node "
                        f"offer what it asks ({self.server_resources or 'a place on the driver node'})?"
                    ) from None
                logger.info("agl-server serving on %s (data in %s on node %s)", address, data_dir, self.server_node_id)
            if self.placement_group:
                group = self._reserve(ray)
            runners = [
                self._runner(ray, RunnerActor, run_id, index, runner, address, token, group)
                for index in range(self.n_runners)
            ]
            runs = [actor.run.remote() for actor in runners]
            self._wait_runners_started(ray, runners, runs)
            return asyncio.run(self._run_algorithm(algorithm, address, token, runs))
        except KeyboardInterrupt:
            aborted = True
            raise
        finally:
            try:
                self._stop_runners(ray, runners, runs, abort=aborted)
                if runners and address is not None:
                    # Killed runners' streams broke; the server must see that before it stops, or
                    # it keeps their attempts running for a reconnect that never comes. On a server
                    # of this run every runner worker is ours, restarted ones (new ids) included.
                    departures.wait_killed_runners_gone(
                        address,
                        [p["worker_id"] for p in self.placed if p.get("worker_id")],
                        token=token,
                        tls=self.tls,
                        root_certificates=self.root_certificates,
                        id_prefix=RUNNER_ID_PREFIX if server is not None else None,
                    )
                if server is not None:
                    with contextlib.suppress(Exception):
                        ray.get(server.stop.remote(), timeout=30)
                    ray.kill(server, no_restart=True)
                if group is not None:
                    ray.util.remove_placement_group(group)
            finally:
                connection.close()

    def _server_placement(self, ray: Any) -> dict[str, Any]:
        if self.server_resources is not None:
            return {"num_cpus": 0, **self.server_resources}
        # Default: the driver's node (its disk, the address the driver reaches).
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        node = ray.get_runtime_context().get_node_id()
        return {"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}

    def _reserve(self, ray: Any) -> Any:
        bundle = {"CPU": self.runner_resources.get("num_cpus", 1), **self.runner_resources.get("resources", {})}
        if self.runner_resources.get("num_gpus"):
            bundle["GPU"] = self.runner_resources["num_gpus"]
        if self.runner_resources.get("memory"):
            bundle["memory"] = self.runner_resources["memory"]
        bundle = {name: amount for name, amount in bundle.items() if amount}  # Ray refuses zero amounts
        if not bundle:
            raise ValueError(
                "placement_group needs runner_resources that ask for something (CPUs or a custom resource)"
            )
        group = ray.util.placement_group([dict(bundle) for _ in range(self.n_runners)], strategy=self.placement_group)
        if not ray.get(group.ready(), timeout=self.runner_start_timeout):
            raise RuntimeError(f"the placement group of {self.n_runners} runners was not reserved in time")
        return group

    def _runner(
        self,
        ray: Any,
        actor_class: type,
        run_id: str,
        index: int,
        spec: RunnerSpec,
        address: str,
        token: str | None,
        group: Any,
    ) -> Any:
        config = runner_process.RunnerProcessConfig(
            spec=spec,
            server=address,
            index=index,
            token=token,
            tls=self.tls,
            root_certificates=self.root_certificates,
            log_level=self.runner_log_level,
            report_plugin_failures=False,
        )
        placement: dict[str, Any] = dict(self.runner_resources)
        if group is not None:
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            placement["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                group, placement_group_bundle_index=index
            )
        else:
            placement["scheduling_strategy"] = "SPREAD"
        return (
            ray.remote(actor_class)
            .options(
                name=f"agl-{run_id}-runner-{index}",
                max_restarts=self.max_restarts,
                max_task_retries=-1,  # run() resumes on the restarted actor
                max_concurrency=4,  # run() holds one thread; wait_ready() and stop() need others
                **placement,
            )
            .remote(config)
        )

    def _wait_runners_started(self, ray: Any, runners: list[Any], runs: list[Any]) -> None:
        """Until every runner is connected to agl-server, or ``runner_start_timeout``: runner
        start-up (a Ray worker importing the agent) stays out of the algorithm's first deadlines."""
        deadline = time.monotonic() + self.runner_start_timeout
        readies = {actor.wait_ready.remote(self.runner_start_timeout): actor for actor in runners}
        pending = list(readies)
        self.placed = []
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            done, pending = ray.wait(pending, num_returns=1, timeout=left)
            for ref in done:
                try:
                    self.placed.append(ray.get(ref))
                except Exception as exc:  # the actor died starting: its run() says why
                    logger.warning("a runner actor failed to start: %s", exc)
            ended, _ = ray.wait(runs, num_returns=len(runs), timeout=0)
            if len(ended) == len(runs):
                break  # every runner ended already: the supervision reports it
        if pending or not all(p.get("ready") for p in self.placed):
            logger.warning(
                "%d of %d runner(s) not connected to agl-server after %gs; the algorithm starts anyway",
                len(pending) + sum(not p.get("ready") for p in self.placed),
                len(runners),
                self.runner_start_timeout,
            )
        nodes = {p["node_id"] for p in self.placed}
        logger.info("%d runner(s) connected on %d node(s)", len(self.placed), len(nodes))

    async def _run_algorithm(self, algorithm: AlgorithmBundle, address: str, token: str | None, runs: list[Any]) -> Any:
        store = GrpcStore(address, token=token, tls=self.tls, root_certificates=self.root_certificates)
        try:
            await store.wait_ready(30.0)
            return await self._supervised(algorithm(store), runs)
        finally:
            await store.close()

    async def _supervised(self, work: Any, runs: list[Any]) -> Any:
        """Run the algorithm while watching the runners' ``run`` calls: one that ends (its actor
        out of restarts, or an error) is logged; if all end, the algorithm is stopped with an
        error instead of waiting forever."""
        task = asyncio.ensure_future(work)
        watched = {asyncio.wrap_future(ref.future()): index for index, ref in enumerate(runs)}
        left = set(watched)
        try:
            while left:
                done, _ = await asyncio.wait({task, *left}, return_when=asyncio.FIRST_COMPLETED)
                if task in done:
                    break
                for ended in done:
                    left.discard(ended)
                    error = ended.exception()
                    logger.warning(
                        "runner %d ended while the algorithm runs (%s); its attempts are retried by the "
                        "other runners (%d left)",
                        watched[ended],
                        f"{type(error).__name__}: {error}" if error else "it stopped",
                        len(left),
                    )
        finally:
            for future in watched:
                future.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise RuntimeError("every runner actor ended before the algorithm finished; see their logs above")

    # --- shutdown ----------------------------------------------------------------------------------

    def _stop_runners(self, ray: Any, runners: list[Any], runs: list[Any], *, abort: bool) -> None:
        """Drain (unless aborting), then kill every runner actor without restart."""
        if runners and not abort:
            for actor in runners:
                with contextlib.suppress(Exception):
                    actor.stop.remote()
            _, still = ray.wait(runs, num_returns=len(runs), timeout=self.graceful_timeout)
            if still:
                logger.warning(
                    "%d runner(s) still running %gs after the stop; killing them (their attempts are given up)",
                    len(still),
                    self.graceful_timeout,
                )
        for actor in runners:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        if runners:
            # ray.kill returns at once: wait (bounded) until the actors are gone, so agl-server,
            # stopped next, records their attempts given up first.
            started = time.monotonic()
            gone, _ = ray.wait(runs, num_returns=len(runs), timeout=10.0)
            logger.debug("%d of %d runner actors gone after %.2fs", len(gone), len(runs), time.monotonic() - started)
