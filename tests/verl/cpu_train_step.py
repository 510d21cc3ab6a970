"""One ``AglPPOTrainer.train_step`` on CPU: everything but Ray and vLLM is real.

Run by ``test_cpu_train_step.py`` in a subprocess (it sets process-wide state: verl's platform and
a torch.distributed process group). What runs:

- agl-server (a child process), the test OpenAI-compatible backend, the LLM proxy and the rollout
  daemon (``RolloutService``), runners taking rollouts from the store (``support.runners``);
- the trainer's own phases: gen (rollouts through the store into a DataProto), reward, log probs
  (verl's ``_compute_old_log_prob``), adv (verl's ``compute_advantage``, drop rules), update
  (verl's ``_update_actor``) on a tiny Qwen2 model built on the spot;
- verl's training engine (FSDP2, ``TrainingWorker`` configured as verl's ``ActorRolloutRefWorker``
  configures it) on CPU, built by ``agl.workers: local``'s ``build_actor`` (which puts the process
  on agl's CPU platform for verl when there is no GPU).

What does not run: Ray worker groups (the worker is called in-process) and vLLM (the test backend
answers instead; weight sync to vLLM replicas is a no-op, counted). The backend's toy token ids
are mapped into the tiny model's vocabulary (modulo) before the update: its tokenizer is not the
model's.

Usage: ``python cpu_train_step.py MODEL_DIR RESULT_JSON``
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: support.*
sys.path.insert(0, str(Path(__file__).parent))  # tests/verl/: tiny_grpo

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
    import tiny_grpo
    from support.openai_server import OpenAIServer
    from support.runners import runners

    from agl_core.tracer import OtelTracer
    from agl_plugins.verl.config import AglSettings
    from agl_plugins.verl.dataset import TaskDataset, collate_tasks
    from agl_plugins.verl.entrypoint import load_config
    from agl_plugins.verl.local import NoReplicas, build_actor, role_mapping
    from agl_plugins.verl.loop import LoopThread
    from agl_plugins.verl.service import RolloutService
    from agl_plugins.verl.trainer import AglPPOTrainer
    from agl_server.process import ServerProcess

    scratch = Path(tempfile.mkdtemp(prefix="agl-cpu-step-"))
    server = ServerProcess(scratch / "data").start()
    backend = OpenAIServer().start()
    config = load_config(
        [*tiny_grpo.overrides(model_dir), "trainer.save_freq=-1"],
        {"agl": {"store": server.address, "rollout": {"step_timeout": 120}}},
    )
    settings = AglSettings.from_mapping(config.agl)
    # agl.workers=local's actor: the CPU platform, a single-process group, verl's TrainingWorker.
    actor = build_actor(config)
    worker = actor.worker
    model_config = worker.model_config
    vocab = model_config.hf_config.vocab_size

    class CpuTrainer(AglPPOTrainer):
        def gen(self, tasks: Any, metrics: dict[str, Any], timing: dict[str, float]) -> Any:
            batch = super().gen(tasks, metrics, timing)
            if batch is not None:
                self.gen_batch = batch.batch.clone()
                for key in ("prompts", "responses", "input_ids"):
                    batch.batch[key] = batch.batch[key] % vocab
            return batch

    tasks = [{"q": "what is 3 plus 4"}, {"q": "what is 10 minus 7"}]
    role_worker_mapping, pools = role_mapping()
    trainer = CpuTrainer(
        agl=settings,
        config=config,
        tokenizer=model_config.tokenizer,
        role_worker_mapping=role_worker_mapping,
        resource_pool_manager=pools,
        train_dataset=TaskDataset(tasks),
        val_dataset=TaskDataset(tasks),
        collate_fn=collate_tasks,
    )
    # What init_workers() sets up with Ray and vLLM, in-process here.
    trainer.actor_rollout_wg = actor
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
        shutil.rmtree(scratch, ignore_errors=True)
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
