"""The CPU engine's side inside verl's actor worker: verl's ``BaseRollout`` for ``rollout.name=agl_cpu``.

verl builds it in each hybrid actor/rollout worker (``get_rollout_class("agl_cpu", "async")``), as
it builds vLLM's ``ServerAdapter``, and calls it during the weight sync (``update_weights`` of the
actor worker, checkpoint backend ``naive``): ``resume(["weights"])``, ``update_weights(named
tensors)``, ``resume(["kv_cache"])``. It forwards them to the replica's HTTP server actor
(:class:`~agl_plugins.verl.cpu_engine.replica.CpuHttpServer`): the weights go through Ray's object
store in buckets of ``checkpoint_engine.update_weights_bucket_megabytes``. Every rank walks the
weight generator (FSDP gathers each full tensor collectively); the replica's first rank sends.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator
from typing import Any

import ray
import torch
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.utils import ensure_async_iterator


def server_actor_name(replica_rank: int, node_rank: int = 0) -> str:
    """The Ray actor name of a replica's HTTP server (verl's naming scheme: ``<rollout name>_server_<r>_<n>``)."""
    return f"agl_cpu_server_{replica_rank}_{node_rank}"


class CpuServerAdapter(BaseRollout):
    """Weight sync and sleep/wake of the CPU engine, from the actor worker (see the module docstring)."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, replica_rank: int = -1) -> None:
        super().__init__(config, model_config, device_mesh)
        if self.config.tensor_model_parallel_size * self.config.pipeline_model_parallel_size != 1:
            raise ValueError(
                "rollout.name=agl_cpu serves each replica from one process: set "
                "actor_rollout_ref.rollout.tensor_model_parallel_size=1 (and pipeline_model_parallel_size=1)"
            )
        rank = int(os.environ.get("RANK", "0"))
        self.replica_rank = rank if replica_rank == -1 else replica_rank
        self.is_leader_rank = True  # one rank per replica
        self.bucket_bytes = max(1, self.config.checkpoint_engine.update_weights_bucket_megabytes) << 20
        self._server: Any = None

    @property
    def server(self) -> Any:
        # The server is launched after the workers (verl launches replicas last): look it up lazily.
        if self._server is None:
            self._server = ray.get_actor(server_actor_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]) -> None:
        if self.config.free_cache_engine:
            await self.server.wake_up.remote(tags=tags)

    async def release(self) -> None:
        if self.config.free_cache_engine:
            await self.server.sleep.remote()

    @torch.no_grad()
    async def update_weights(
        self,
        weights: Generator[tuple[str, torch.Tensor], None, None],
        wire_format: str = "named_tensors",
        global_steps: int | None = None,
        **kwargs: Any,
    ) -> None:
        if wire_format != "named_tensors":
            raise ValueError(
                f"rollout.name=agl_cpu takes full tensors (checkpoint_engine.backend naive), not {wire_format!r}"
            )
        if kwargs.get("peft_config") is not None:
            raise ValueError("rollout.name=agl_cpu takes merged weights; set actor_rollout_ref.model.lora.merge=true")
        bucket: list[tuple[str, torch.Tensor]] = []
        size = 0
        async for name, tensor in _tensors(weights):
            bucket.append((name, tensor.detach().to("cpu").contiguous()))
            size += tensor.numel() * tensor.element_size()
            if size >= self.bucket_bytes:
                await self.server.load_weights.remote(bucket)
                bucket, size = [], 0
        if bucket:
            await self.server.load_weights.remote(bucket)
        await self.server.finish_weight_update.remote(global_steps)


async def _tensors(weights: Any) -> AsyncIterator[tuple[str, torch.Tensor]]:
    async for name, tensor in ensure_async_iterator(weights):
        full = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
        yield name, full


__all__ = ["CpuServerAdapter", "server_actor_name"]
