"""Optimise the order-extraction prompt of ``orders.py`` with APO, against any OpenAI-compatible
endpoint.

    export OPENAI_BASE_URL=http://localhost:8000/v1   # omit for OpenAI itself
    export OPENAI_API_KEY=...                         # any value for an endpoint without keys
    export AGENT_MODEL=gpt-4.1-mini                   # the model the agent calls
    export AGL_APO_GRADIENT_MODEL=gpt-4.1-mini        # critique model (default: AGENT_MODEL)
    export AGL_APO_EDIT_MODEL=gpt-4.1-mini            # edit model (default: the critique model)
    python examples/apo_orders/train.py --data-dir ./apo-data

agl-server and two runner processes start here (strategy ``cs``); APO runs in this process and
prints a line per round. With ``--data-dir`` the store is kept, and
``python -m agl_plugins.algorithms.apo history --data-dir ./apo-data`` shows every candidate and
how the winner came about.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
from typing import Any

from orders import SEED_PROMPT, extract_order, make_tasks

from agl_core.trainer import Trainer
from agl_core.types import LLM, PromptTemplate


def main(agent: Any = extract_order, tracer: Any = "otel", description: str | None = None) -> None:
    """Parse the command line and optimise ``agent``'s prompt (the framework examples call this with
    their own agent and a tracer that turns their framework's instrumentation on)."""
    parser = argparse.ArgumentParser(description=description or __doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--beam-width", type=int, default=2)
    parser.add_argument("--branch-factor", type=int, default=2)
    parser.add_argument("--train", type=int, default=24, help="training tasks")
    parser.add_argument("--val", type=int, default=12, help="validation tasks")
    parser.add_argument("--runners", type=int, default=2)
    parser.add_argument("--strategy", choices=("cs", "shm"), default="cs")
    parser.add_argument("--data-dir", help="keep the store here (default: a temporary directory)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    model = os.environ.get("AGENT_MODEL", "gpt-4.1-mini")
    endpoint = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
    rng = random.Random(7)
    train, val = make_tasks(args.train, rng), make_tasks(args.val, rng)
    strategy: dict[str, object] = {"type": args.strategy}
    if args.data_dir:
        strategy.update(data_dir=args.data_dir, keep_data=True)
    trainer = Trainer(
        algorithm={
            "type": "apo",
            "gradient_model": os.environ.get("AGL_APO_GRADIENT_MODEL", model),
            "beam_width": args.beam_width,
            "branch_factor": args.branch_factor,
            "beam_rounds": args.rounds,
            "gradient_batch_size": 4,
            "val_batch_size": args.val,
            "rollout_batch_timeout": 600,
            "seed": 1,
        },
        strategy=strategy,
        n_runners=args.runners,
        runner_capacity=4,
        tracer=tracer,  # records the agent's LLM calls, which the critique model reads
        # The agent's endpoint travels as a resource; its key stays in the environment.
        initial_resources={
            "prompt_template": PromptTemplate(template=SEED_PROMPT),
            "llm": LLM(endpoint=endpoint, model=model),
        },
        progress=False,
    )
    result = trainer.fit(agent, train, val_dataset=val)
    best = result.best
    print(f"\nseed prompt scored {result.seed_score:.3f}; best prompt ({best.candidate_id}) {result.best_score:.3f}:")
    print("\n" + result.best_prompt.template + "\n")
    for summary in result.rounds:
        print(f"round {summary.round}: leader {summary.leader_score:.3f}, best so far {summary.best_score:.3f}")


if __name__ == "__main__":
    main()
