"""One ``AglPPOTrainer.train_step`` on CPU: everything but Ray and vLLM is real.

Run by ``test_cpu_train_step.py`` in a subprocess (it sets process-wide state: verl's platform and
a torch.distributed process group). What runs:

- agl-server (a child process), the test OpenAI-compatible backend, the LLM proxy and the rollout
  daemon (``RolloutService``), runners taking rollouts from the store (``support.runners``);
- the trainer's own phases: gen (rollouts through the store into a DataProto), reward, log probs
  (verl's ``_compute_old_log_prob``), adv (verl's ``compute_advantage``, drop rules), update
  (verl's ``_update_actor``) on a tiny Qwen2 model built on the spot;
- verl's training engine (FSDP2, ``TrainingWorker`` configured as verl's ``ActorRolloutRefWorker``
  configures it) on CPU. verl 0.9.1 registers its engines for cuda/npu only, so this script adds a
  CPU platform through verl's platform registry and registers the FSDP engine for "cpu" through
  its engine registry.

What does not run: Ray worker groups (the worker is called in-process) and vLLM (the test backend
answers instead; weight sync to vLLM replicas is a no-op, counted). The backend's toy token ids
are mapped into the tiny model's vocabulary (modulo) before the update: its tokenizer is not the
model's.

Usage: ``python cpu_train_step.py MODEL_DIR RESULT_JSON``
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: support.*

import torch


async def one_turn_agent(rollout: Any, llm: Any) -> None:
    import openai

    from agl_core.emitter import emit_reward

    client = openai.AsyncOpenAI(
        base_url=llm.get_base_url(rollout.rollout_id, rollout.attempt.attempt_id), api_key="t", max_retries=0
    )
    await client.chat.completions.create(model=llm.model, messages=[{"role": "user", "content": rollout.input["q"]}])
    emit_reward(1.0 if rollout.metadata["repeat"] == 0 else 0.0)


def main(model_dir: str, result_path: str) -> None:
    import socket

    from agl_plugins.verl.local import LocalActor, NoReplicas, use_cpu_for_verl

    with socket.socket() as sock:  # a free port for the single-process group verl's worker joins
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update(
        {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    )
    use_cpu_for_verl()
    torch.distributed.init_process_group("gloo", rank=0, world_size=1)

    from support.openai_server import OpenAIServer
    from support.runners import runners
    from verl.trainer.ppo.utils import Role
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import ActorConfig, HFModelConfig, TrainingWorkerConfig
    from verl.workers.engine_workers import TrainingWorker
    from verl.workers.utils.losses import ppo_loss

    from agl_core.tracer import OtelTracer
    from agl_plugins.verl.config import AglSettings
    from agl_plugins.verl.dataset import TaskDataset, collate_tasks
    from agl_plugins.verl.entrypoint import load_config
    from agl_plugins.verl.loop import LoopThread
    from agl_plugins.verl.service import RolloutService
    from agl_plugins.verl.trainer import AglPPOTrainer
    from agl_server.process import ServerProcess

    server = ServerProcess(Path(tempfile.mkdtemp(prefix="agl-cpu-step-")) / "data").start()
    backend = OpenAIServer().start()
    config = load_config(
        [
            f"actor_rollout_ref.model.path={model_dir}",
            "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
            "actor_rollout_ref.model.use_remove_padding=false",
            "actor_rollout_ref.actor.strategy=fsdp2",
            "actor_rollout_ref.actor.ppo_mini_batch_size=2",
            "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
            "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
            "actor_rollout_ref.rollout.n=2",
            "algorithm.adv_estimator=grpo",
            "actor_rollout_ref.actor.optim.lr=1e-3",
            "data.train_batch_size=2",
            "data.max_prompt_length=32",
            "data.max_response_length=16",
            "trainer.save_freq=-1",
            "trainer.n_gpus_per_node=1",
        ],
        {"agl": {"store": server.address, "rollout": {"step_timeout": 120}}},
    )
    settings = AglSettings.from_mapping(config.agl)
    ar = config.actor_rollout_ref
    model_config: HFModelConfig = omega_conf_to_dataclass(ar.model, dataclass_type=HFModelConfig)
    actor_config: ActorConfig = omega_conf_to_dataclass(ar.actor)
    actor_config.model_config = model_config
    training = TrainingWorkerConfig(
        model_type="language_model",
        model_config=model_config,
        engine_config=actor_config.engine,
        optimizer_config=actor_config.optim,
        checkpoint_config=actor_config.checkpoint,
    )
    training.engine_config.use_dynamic_bsz = False
    training.engine_config.infer_micro_batch_size_per_gpu = ar.rollout.log_prob_micro_batch_size_per_gpu
    training.engine_config.micro_batch_size_per_gpu = ar.actor.ppo_micro_batch_size_per_gpu
    training.engine_config.use_remove_padding = False
    worker = TrainingWorker(config=training)
    worker.reset()
    worker.set_loss_fn(partial(ppo_loss, config=actor_config))
    vocab = model_config.hf_config.vocab_size

    class CpuTrainer(AglPPOTrainer):
        def gen(self, tasks: Any, metrics: dict[str, Any], timing: dict[str, float]) -> Any:
            batch = super().gen(tasks, metrics, timing)
            if batch is not None:
                self.gen_batch = batch.batch.clone()
                for key in ("prompts", "responses", "input_ids"):
                    batch.batch[key] = batch.batch[key] % vocab
            return batch

    from verl.single_controller.ray import ResourcePoolManager

    tasks = [{"q": "what is 3 plus 4"}, {"q": "what is 10 minus 7"}]
    trainer = CpuTrainer(
        agl=settings,
        config=config,
        tokenizer=model_config.tokenizer,
        role_worker_mapping={Role.ActorRollout: TrainingWorker},
        resource_pool_manager=ResourcePoolManager(
            resource_pool_spec={"global_pool": [1]}, mapping={Role.ActorRollout: "global_pool"}
        ),
        train_dataset=TaskDataset(tasks),
        val_dataset=TaskDataset(tasks),
        collate_fn=collate_tasks,
    )
    # What init_workers() sets up with Ray and vLLM, in-process here.
    trainer.actor_rollout_wg = LocalActor(worker)
    trainer.checkpoint_manager = NoReplicas()
    trainer.rollouts = RolloutService(settings, model=backend.model).start([backend.base_url])
    trainer.global_steps = 1

    loop = LoopThread("runners")
    store = loop.run(_open_store(server.address))
    tracer = OtelTracer(instrument_openai=False)
    tracer.init()
    context = runners(store, tracer, one_turn_agent, count=2)
    loop.run(context.__aenter__())
    module = worker.engine.module
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    started = time.monotonic()
    try:
        metrics = trainer.train_step(next(iter(trainer.train_dataloader)))
    finally:
        loop.run(context.__aexit__(None, None, None))
        loop.run(store.close())
        loop.close()
        trainer.rollouts.close()
        backend.stop()
        server.stop()
    changed = sum(not torch.equal(before[name], p.detach()) for name, p in module.named_parameters())
    finite = all(
        bool(torch.isfinite(p.detach().full_tensor() if hasattr(p, "full_tensor") else p).all())
        for p in module.parameters()
    )
    gen = trainer.gen_batch
    result = {
        "seconds": time.monotonic() - started,
        "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
        "parameters": len(before),
        "parameters_changed": changed,
        "parameters_finite": finite,
        "replica_calls": trainer.checkpoint_manager.calls,
        "gen_scores": gen["token_level_scores"].sum(-1).tolist(),
        "gen_response_ids": gen["responses"].tolist(),
        "expected_response_ids": [backend.response_token_ids(f"echo: {t['q']}") for t in tasks for _ in range(2)],
    }
    Path(result_path).write_text(json.dumps(result))
    print(json.dumps({k: result[k] for k in ("seconds", "parameters_changed", "replica_calls")}))


async def _open_store(address: str) -> Any:
    from agl_core.client import GrpcStore

    store = GrpcStore(address)
    await store.wait_ready()
    return store


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
