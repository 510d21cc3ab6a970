"""Quick start: train a small agent end to end with agl, offline.

The agent answers arithmetic questions with a prompt template. Its "model" is a stand-in that
runs without any LLM: it always gets the sum right, but *how* it answers depends on the prompt,
and the grader only gives full marks for a bare number. The algorithm (a tiny prompt search
written with ``@algo``) publishes one candidate template after the other as a resource, lets the
runners run the training tasks with it, keeps the template with the best mean reward and
validates it on held-out tasks.

The ``cs`` strategy starts agl-server (the gRPC store daemon, on its embedded LMDB store) and two
runner processes that take work on the server's Work stream; the algorithm runs here.

    python examples/quickstart.py
"""

from __future__ import annotations

import logging
import random
import re
from typing import Any

from agl_core.algorithm import algo, mean_reward, run_rollouts
from agl_core.litagent import prompt_rollout
from agl_core.tracer import NullTracer
from agl_core.trainer import Trainer
from agl_core.types import PromptTemplate

CANDIDATES = [
    "{question}",
    "{question} Think step by step.",
    "{question} Reply with only the number.",
]


def stand_in_model(prompt: str) -> str:
    """Answers like a chatty model would, unless the prompt asks for the number alone."""
    a, b = map(int, re.findall(r"\d+", prompt)[:2])
    if "only the number" in prompt:
        return str(a + b)
    if "step by step" in prompt:
        return f"{a} plus {b}: first the tens, then the ones, so the answer is {a + b}."
    return f"That would be roughly {round(a + b, -1)}."


def grade(reply: str, answer: int) -> float:
    """1 for exactly the number, 0.5 when the number is somewhere in the reply, else 0."""
    if reply.strip() == str(answer):
        return 1.0
    return 0.5 if str(answer) in re.findall(r"\d+", reply) else 0.0


@prompt_rollout
def solve(task: dict[str, Any], prompt_template: PromptTemplate) -> float:
    reply = stand_in_model(prompt_template.format(question=task["question"]))
    return grade(reply, task["answer"])


@algo
async def prompt_search(*, store: Any, train_dataset: list[Any], val_dataset: list[Any]) -> dict[str, Any]:
    best: tuple[float, str, str] | None = None
    for template in CANDIDATES:
        candidate = await store.add_resources({"prompt": PromptTemplate(template=template)})
        outcomes = await run_rollouts(store, train_dataset, mode="train", resources_id=candidate.resources_id)
        reward = mean_reward(outcomes) or 0.0
        print(f"  template {template!r}: mean reward {reward:.2f} over {len(outcomes)} rollouts", flush=True)
        if best is None or reward > best[0]:
            best = (reward, template, candidate.resources_id)
    assert best is not None
    validation = await run_rollouts(store, val_dataset, mode="val", resources_id=best[2])
    return {"template": best[1], "train_reward": best[0], "val_reward": mean_reward(validation) or 0.0}


def make_tasks(count: int, rng: random.Random) -> list[dict[str, Any]]:
    tasks = []
    for _ in range(count):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        tasks.append({"question": f"What is {a} plus {b}?", "answer": a + b})
    return tasks


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rng = random.Random(7)
    train, val = make_tasks(30, rng), make_tasks(20, rng)
    trainer = Trainer(
        algorithm=prompt_search,
        strategy="cs",  # agl-server + runner processes on this machine
        n_runners=2,
        runner_capacity=4,
        tracer=NullTracer,  # the agent reports its reward itself; there are no LLM calls to trace
        progress="lines",
        progress_interval=1.0,
    )
    result = trainer.fit(solve, train, val_dataset=val)
    result.raise_for_status()  # every rollout failed: say so with a non-zero exit
    print(f"\n{result}")  # one line: rollouts by status and mean reward, per split
    best = result.result  # what the algorithm returned
    print(f"best template: {best['template']!r}")
    print(f"train reward {best['train_reward']:.2f}, validation reward {best['val_reward']:.2f}")


if __name__ == "__main__":
    main()
