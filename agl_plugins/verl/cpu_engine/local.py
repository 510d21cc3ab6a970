"""The CPU engine in the trainer's own process, for ``agl.workers: local`` (no Ray).

With local workers the actor is a verl ``TrainingWorker`` in the trainer's process (see
:mod:`agl_plugins.verl.local`). :class:`LocalCpuReplicas` serves the policy beside it: one
:class:`~agl_plugins.verl.cpu_engine.server.CpuServer` on an event-loop thread of its own, and the
calls verl's trainer makes on its checkpoint manager (``CheckpointEngineManager``), with the same
meaning as with Ray replicas:

- ``update_weights(step)``: the actor's weights, exported by verl's engine as it exports them for
  vLLM (``get_per_tensor_param``: full tensors with Hugging Face names), copied into the served
  model; then the server takes calls again;
- ``sleep_replicas()``: calls in flight finish, new ones wait (the actor trains meanwhile);
- ``wake_up_replicas()``: the server takes calls again.

``calls`` records them in order (tests check it). The engine's options are those of the Ray
replica (``actor_rollout_ref.rollout.engine_kwargs.agl_cpu``).
"""

from __future__ import annotations

import time
from typing import Any

from agl_plugins.verl.cpu_engine.generation import CpuGenerator
from agl_plugins.verl.cpu_engine.replica import engine_options
from agl_plugins.verl.cpu_engine.server import CpuServer
from agl_plugins.verl.loop import LoopThread


class LocalCpuReplicas:
    """One CPU server for the local actor (see the module docstring).

    :param config: the whole verl config (``actor_rollout_ref.model``, ``.rollout``).
    :param actor: the local actor (:class:`agl_plugins.verl.local.LocalActor`).
    :param host: interface to serve on (runners on other machines: ``0.0.0.0``).
    """

    def __init__(self, config: Any, actor: Any, host: str = "127.0.0.1") -> None:
        rollout, model = config.actor_rollout_ref.rollout, config.actor_rollout_ref.model
        options = engine_options(rollout)
        self.actor = actor
        self.calls: list[str] = []
        self.sync_seconds: list[float] = []
        generator = CpuGenerator(
            str(model.path),
            dtype=options["dtype"],
            load_weights=rollout.get("load_format", "auto") != "dummy",
            logprobs_mode=rollout.get("logprobs_mode") or "processed_logprobs",
            max_model_len=rollout.get("max_model_len"),
            trust_remote_code=bool(model.get("trust_remote_code", False)),
        )
        if options["threads"]:
            import torch

            torch.set_num_threads(int(options["threads"]))
        self.server = CpuServer(
            generator,
            model_name=str(model.path),
            max_tokens=int(rollout.response_length),
            max_batch=int(options["max_batch"]),
            tool_parser=options["tool_parser"],
        )
        self._loop = LoopThread("agl-cpu-engine")
        self._loop.run(self.server.start(host=host, port=0))

    @property
    def addresses(self) -> list[str]:
        """The server's base URL (what ``LLMServerManager.get_addresses`` gives with Ray replicas)."""
        return [f"http://{self.server.host}:{self.server.port}"]

    def sleep_replicas(self) -> None:
        self.calls.append("sleep_replicas")
        self._loop.run(self.server.sleep())

    def wake_up_replicas(self) -> None:
        self.calls.append("wake_up_replicas")
        self._loop.loop.call_soon_threadsafe(self.server.wake_up)

    def update_weights(self, global_steps: int | None = None) -> dict[str, Any]:
        self.calls.append(f"update_weights({global_steps})")
        started = time.monotonic()
        weights, _ = self.actor.worker.engine.get_per_tensor_param()
        loaded = self.server.generator.load_weights(
            (name, tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor) for name, tensor in weights
        )
        self._loop.loop.call_soon_threadsafe(self.server.wake_up)
        self.sync_seconds.append(time.monotonic() - started)
        return {"agl/weights_synced": loaded}

    def close(self) -> None:
        self._loop.run(self.server.stop())
        self._loop.close()


__all__ = ["LocalCpuReplicas"]
