"""Ray's workers at the driver's own CPU priority (shared by the ray strategy and the verl plugin).

Ray renices every worker process to 15 (its ``worker_niceness`` setting), so that its raylet and
GCS stay responsive when tasks saturate a node. In an agl run the workers *are* the work: verl's
actor and rollout engine, the ray strategy's runners and agl-server itself. At niceness 15 beside
a process at the default 0, a worker gets about 1/30 of the core they share (the kernel's weights
for 15 and 0 are 36 and 1024): ``examples/verl_cpu/train.py --workers ray --steps 2`` takes 42 s
on an idle 2-core machine, and beside two busy processes had not finished after 540 s; with its
workers at the driver's priority it took 68 s.

So when agl connects Ray, the job's runtime environment sets ``RAY_worker_niceness`` to the
driver's niceness: start the trainer with ``nice -n 10`` and its workers run at 10 too. A value
the caller gave, in the runtime environment or in this process's environment, is used instead, so
``RAY_worker_niceness=15`` restores Ray's default. A connection made before agl's (``ray.init`` by
the caller) keeps what it was made with. A script run by ``ray job submit`` gets it too: Ray merges
``ray.init``'s runtime environment into the job's (the job manager removes its own value there).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

WORKER_NICENESS = "RAY_worker_niceness"


def at_driver_priority(init_args: Mapping[str, Any]) -> dict[str, Any]:
    """``ray.init`` arguments ``init_args`` whose runtime environment gives Ray's workers this
    process's niceness, unless the caller chose one (``init_args`` is not changed)."""
    args = dict(init_args)
    runtime_env = dict(args.get("runtime_env") or {})
    env_vars = dict(runtime_env.get("env_vars") or {})
    if WORKER_NICENESS in env_vars:
        return args
    # This process's setting travels to a cluster started elsewhere too; nice(0) changes nothing
    # and returns the niceness.
    env_vars[WORKER_NICENESS] = os.environ.get(WORKER_NICENESS) or str(os.nice(0))
    runtime_env["env_vars"] = env_vars
    args["runtime_env"] = runtime_env
    return args
