"""Quick start: agl-server on its embedded LMDB store, four workers taking tasks over gRPC.

Starts ``agl-server`` as a child process on a free port, enqueues arithmetic tasks, lets four
workers claim them (long-poll dequeue), stream a span for each step and a reward, and finish
their attempts; follows progress on the watch stream and prints a summary. Offline, no model.
"""

from __future__ import annotations

import asyncio
import random
import tempfile

from agl_core import RolloutStatus, new_span
from agl_core.client import GrpcStore
from agl_server.process import ServerProcess

TASKS = 40
WORKERS = 4


async def worker(store: GrpcStore, name: str) -> int:
    done = 0
    while (rollout := await store.dequeue_rollout(worker_id=name, wait=0.5)) is not None:
        a, b = rollout.input["a"], rollout.input["b"]
        answer = a + b if random.random() > 0.1 else a - b  # a slightly unreliable "agent"
        attempt = rollout.attempt
        assert attempt is not None
        await store.add_spans(
            [
                new_span(
                    "think",
                    rollout_id=rollout.rollout_id,
                    attempt_id=attempt.attempt_id,
                    attributes={"question": f"{a}+{b}", "answer": answer},
                ),
                new_span(
                    "agl.reward",
                    rollout_id=rollout.rollout_id,
                    attempt_id=attempt.attempt_id,
                    attributes={"agl.reward.value": float(answer == a + b)},
                ),
            ]
        )
        await store.update_attempt(rollout.rollout_id, attempt.attempt_id, status="succeeded")
        done += 1
    return done


async def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir, ServerProcess(data_dir) as server:
        print(f"agl-server is serving on {server.address} (data in {data_dir})")
        async with GrpcStore(server.address) as store:
            rollouts = await store.enqueue_rollouts(
                [
                    {"input": {"a": random.randint(1, 99), "b": random.randint(1, 99)}, "mode": "train"}
                    for _ in range(TASKS)
                ]
            )
            ids = [r.rollout_id for r in rollouts]
            print(f"enqueued {len(ids)} tasks; {WORKERS} workers start")

            async def progress() -> None:
                finished = 0
                async for event in store.watch_rollouts(rollout_ids=ids, after_event_id=0):
                    if event.new_status.is_terminal:
                        finished += 1
                        if finished % 10 == 0 or finished == TASKS:
                            print(f"  {finished}/{TASKS} rollouts finished")
                        if finished == TASKS:
                            return

            watcher = asyncio.create_task(progress())
            counts = await asyncio.gather(*(worker(store, f"worker-{i}") for i in range(WORKERS)))
            await asyncio.wait_for(watcher, 30)
            finished = await store.wait_for_rollouts(ids, timeout=30)
            rewards = []
            for rollout in finished:
                spans = await store.query_spans(rollout.rollout_id)
                rewards += [s.attributes[0].value.double_value for s in spans if s.name == "agl.reward"]
            stats = await store.stats()
            print()
            print(f"{'worker':<10} rollouts")
            for i, count in enumerate(counts):
                print(f"{'worker-' + str(i):<10} {count:>8}")
            succeeded = sum(r.status == RolloutStatus.SUCCEEDED for r in finished)
            print(
                f"\nsucceeded {succeeded}/{TASKS}, mean reward {sum(rewards) / len(rewards):.2f}, "
                f"{stats['spans']} spans stored"
            )


if __name__ == "__main__":
    asyncio.run(main())
