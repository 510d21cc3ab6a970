"""The CPU engine as verl's ``RolloutReplica`` (``rollout.name=agl_cpu``) and its HTTP server actor.

verl's ``LLMServerManager`` builds one :class:`CpuReplica` per rollout replica (one per actor
worker: the CPU engine has no tensor parallelism), calls ``init_hybrid`` with the actor worker
group and reads ``server_address`` / ``server_handle``, as it does for vLLM. ``launch_servers``
starts a :class:`CpuHttpServer` Ray actor on the worker's node; verl's checkpoint manager then
drives it through the replica (``sleep``/``wake_up``, ``abort_all_requests``, ...) and through the
worker's :class:`~agl_plugins.verl.cpu_engine.rollout.CpuServerAdapter` (the weight sync).

The server actor holds its own copy of the policy (:class:`~agl_plugins.verl.cpu_engine.generation.CpuGenerator`)
and serves it over OpenAI-compatible HTTP (:class:`~agl_plugins.verl.cpu_engine.server.CpuServer`);
it also answers verl's token-in-token-out ``generate`` so verl's own agent loops can use it.
Engine options go under ``actor_rollout_ref.rollout.engine_kwargs.agl_cpu``:

- ``dtype`` (default ``float32``: bf16 matmuls are slow on most CPUs; verl's ``rollout.dtype`` is
  for GPUs), ``max_batch`` (requests sampled together, default 64), ``tool_parser`` (``hermes``
  or null), ``threads`` (torch threads of the server, default: torch's choice).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

from agl_plugins.verl.cpu_engine.rollout import server_actor_name

logger = logging.getLogger(__name__)

ENGINE_NAME = "agl_cpu"
_OPTIONS = {"dtype", "max_batch", "tool_parser", "threads"}


def engine_options(config: Any) -> dict[str, Any]:
    """``rollout.engine_kwargs.agl_cpu`` with defaults; unknown keys are errors, not ignored."""
    kwargs = config.engine_kwargs.get(ENGINE_NAME) or {}
    unknown = sorted(set(kwargs) - _OPTIONS)
    if unknown:
        raise ValueError(
            f"actor_rollout_ref.rollout.engine_kwargs.agl_cpu has unknown keys {unknown}; known: {sorted(_OPTIONS)}"
        )
    return {"dtype": "float32", "max_batch": 64, "tool_parser": "hermes", "threads": None, **dict(kwargs)}


class CpuHttpServer:
    """A replica's server (a Ray actor): the policy's copy, its HTTP server, verl's control calls."""

    def __init__(self, config: Any, model_config: Any, replica_rank: int) -> None:
        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.config import HFModelConfig

        # verl's Ray path hands the replica DictConfigs (vLLM's server converts them the same way);
        # ``local_path``, ``hf_config`` etc. exist only on the dataclasses. Dataclasses pass through.
        self.config = omega_conf_to_dataclass(config)
        self.model_config = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.replica_rank = replica_rank
        self.options = engine_options(config)
        self.global_steps: int | None = None
        self.server: Any = None
        # verl's control calls, in order, in the names LocalCheckpointManager.calls uses (the
        # weights the engine served, step by step, are checkable the same way in both modes).
        self.calls: list[str] = []

    async def launch_server(self) -> tuple[str, int]:
        import torch

        from agl_plugins.verl.cpu_engine.generation import CpuGenerator
        from agl_plugins.verl.cpu_engine.server import CpuServer

        if self.options["threads"]:
            torch.set_num_threads(int(self.options["threads"]))
        generator = CpuGenerator(
            self.model_config.local_path or self.model_config.path,
            dtype=self.options["dtype"],
            load_weights=self.config.load_format != "dummy",
            logprobs_mode=self.config.logprobs_mode or "processed_logprobs",
            max_model_len=self.config.max_model_len,
            trust_remote_code=self.model_config.trust_remote_code,
        )
        self.server = CpuServer(
            generator,
            model_name=self.model_config.path,
            max_tokens=self.config.response_length,
            max_batch=int(self.options["max_batch"]),
            tool_parser=self.options["tool_parser"],
        )
        await self.server.start(host=ray.util.get_node_ip_address().strip("[]"), port=0)
        logger.info(
            "agl_cpu replica %d serving %s on %s:%d", self.replica_rank, self.model_config.path, *self.address()
        )
        return self.address()

    def address(self) -> tuple[str, int]:
        return self.server.host, self.server.port

    # --- verl's control calls (names and signatures as vLLM's server actor) ------------------------

    async def wake_up(self, tags: list[str] | None = None) -> None:
        # There is no device memory to give back on a CPU: only the gate opens, once the weights are in.
        if tags is None or "kv_cache" in tags:
            self.server.wake_up()

    async def sleep(self) -> None:
        self.calls.append("sleep_replicas")
        if self.config.free_cache_engine:
            await self.server.sleep()

    async def wait_for_requests_to_drain(self) -> None:
        await self.server.drain()

    async def load_weights(self, named_tensors: list[tuple[str, Any]]) -> int:
        return await asyncio.to_thread(self.server.generator.load_weights, named_tensors)

    async def finish_weight_update(self, global_steps: int | None) -> int:
        self.calls.append(f"update_weights({global_steps})")
        if global_steps is not None:
            self.global_steps = global_steps
        return self.server.generator.weights_version

    async def control_calls(self) -> list[str]:
        """verl's calls so far (``sleep_replicas``, ``update_weights(step)``), oldest first."""
        return list(self.calls)

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    async def abort_all_requests(self, reject_request: bool = False, **kwargs: Any) -> dict[str, Any]:
        # Calls are short and batched; a weight sync waits for them (sleep drains) instead of aborting.
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self) -> None:
        self.server.wake_up()

    async def clear_kv_cache(self) -> None:
        pass  # transformers' generate keeps no cache between calls

    async def release_kv_cache(self) -> None:
        pass

    async def resume_kv_cache(self) -> None:
        pass

    async def start_profile(self, **kwargs: Any) -> None:
        pass

    async def stop_profile(self) -> None:
        pass

    async def generate(
        self, prompt_ids: list[int], sampling_params: dict[str, Any], request_id: str, **kwargs: Any
    ) -> TokenOutput:
        """verl's token-in-token-out call (its own agent loops use it)."""
        from agl_plugins.verl.cpu_engine.generation import Sampling

        sampling = Sampling(
            temperature=float(sampling_params.get("temperature", 1.0)),
            top_p=float(sampling_params.get("top_p", 1.0)),
            top_k=max(0, int(sampling_params.get("top_k", 0) or 0)),
        )
        max_tokens = int(sampling_params.get("max_tokens") or sampling_params.get("max_new_tokens") or 0)
        max_tokens = max_tokens or self.config.response_length
        [result] = await self.server.sample(list(prompt_ids), 1, max_tokens, sampling)
        return TokenOutput(
            token_ids=result.token_ids,
            log_probs=result.logprobs if sampling_params.get("logprobs") else None,
            stop_reason="completed",
        )


class CpuReplica(RolloutReplica):
    """verl's rollout replica for ``rollout.name=agl_cpu`` (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.world_size != 1:
            raise ValueError(
                "rollout.name=agl_cpu serves each replica from one process: set "
                "actor_rollout_ref.rollout.tensor_model_parallel_size=1, data_parallel_size=1, "
                "pipeline_model_parallel_size=1"
            )
        engine_options(self.config)  # fail at set-up on a misspelt option

    def rollout_worker_use_gpu(self) -> bool:
        return False

    async def launch_servers(self) -> None:
        node_id = None
        if self.workers:
            node_id = await self.workers[0].__ray_call__.remote(lambda worker: ray.get_runtime_context().get_node_id())
        options: dict[str, Any] = {
            "name": server_actor_name(self.replica_rank),
            "max_concurrency": self.max_concurrency,
        }
        if node_id is not None:
            options["scheduling_strategy"] = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                node_id=node_id, soft=False
            )
        server = (
            ray.remote(CpuHttpServer)
            .options(num_cpus=0, **options)
            .remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        )
        host, port = await server.launch_server.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def sleep(self) -> None:
        await asyncio.gather(*[server.sleep.remote() for server in self.servers])


__all__ = ["ENGINE_NAME", "CpuHttpServer", "CpuReplica", "engine_options"]
