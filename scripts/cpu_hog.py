"""Run a command beside a CPU hog: busy-looping processes that keep every core contended.

    python scripts/cpu_hog.py [--per-core 4 | --procs N] -- COMMAND [ARGS...]

The tests must hold on a loaded machine (load 8-20 on 2 cores), so ``make test-loaded`` runs the
suite this way. The hogs are always ended when the command ends, fails or is interrupted, and
each one also leaves by itself when this process goes away (even by SIGKILL), so none outlives
a run. Exits with the command's exit status.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

# Busy work that checks now and then whether the process that started it still exists: a hog
# whose parent was killed (and so never ended it) stops within a fraction of a second.
_LOOP = """
import os, sys
parent = int(sys.argv[1])
n = 0
while True:
    for _ in range(200_000):
        n = (n * 1103515245 + 12345) & 0xFFFFFFFF
    if os.getppid() != parent:
        break
"""


def start_hogs(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", _LOOP, str(os.getpid())]) for _ in range(count)]


def stop_hogs(hogs: Sequence[subprocess.Popen[bytes]]) -> None:
    for hog in hogs:
        if hog.poll() is None:
            hog.kill()
    for hog in hogs:
        hog.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--per-core", type=int, default=4, help="hog processes per core (default 4: load ~4x cores)")
    group.add_argument("--procs", type=int, help="hog processes in all")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run (after --)")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    count = args.procs if args.procs is not None else args.per_core * (os.cpu_count() or 1)
    print(f"cpu_hog: {count} busy processes beside: {' '.join(command)}", file=sys.stderr, flush=True)
    # SIGTERM ends the run like Ctrl-C does, so the finally clause below always stops the hogs.
    signal.signal(signal.SIGTERM, _interrupt)
    hogs = start_hogs(count)
    try:
        child = subprocess.Popen(command)
        try:
            return child.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached the command too (one process group); SIGTERM to this script did not.
            child.terminate()
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            return 130
    finally:
        stop_hogs(hogs)


if __name__ == "__main__":
    sys.exit(main())
