"""Start-up times of the processes a user meets first: agl-server, ``agl plugins``, ``agl --help``.

Each is a fresh process (so the figure includes the interpreter and every import), run N times;
the table gives the median and the slowest run of the wall time, and the median CPU time the
process spent (user + system), which depends far less on what else the machine is doing. agl-server
counts as ready when its ready file appears: the store is open and the port bound, i.e. the moment
a client can connect (its CPU time is read from /proc at that moment).

    python bench/startup_bench.py            # 7 runs each
    python bench/startup_bench.py --runs 15 --label after

Results go to ``bench/results/startup_bench.json`` (or ``startup_bench-LABEL.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, Report, saved_as

SERVER_TARGET_S = 1.5
HELP_TARGET_S = 0.5


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "servers")]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    return env


def time_command(argv: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds from spawn to exit of ``argv``; a non-zero exit is an error (a broken
    bench, not a figure)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {done.returncode}:\n{done.stderr.decode(errors='replace')}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_server_ready(timeout: float = 60.0) -> tuple[float, float]:
    """(wall, CPU) seconds from spawn of agl-server until its ready file exists (store open, port bound)."""
    scratch = Path(tempfile.mkdtemp(prefix="agl-startup-"))
    ready = scratch / "ready.json"
    argv = [
        sys.executable,
        "-m",
        "agl_server",
        "--port",
        "0",
        "--data-dir",
        str(scratch / "data"),
        "--ready-file",
        str(ready),
    ]
    log = open(scratch / "server.log", "wb")
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        # Polling a file is the measurement itself here (the bench is the only reader); 5 ms is
        # well under the resolution that matters.
        while not ready.exists():
            if process.poll() is not None:
                raise SystemExit(f"agl-server exited with {process.returncode}: {(scratch / 'server.log').read_text()}")
            if time.perf_counter() - started > timeout:
                raise SystemExit(f"agl-server was not ready within {timeout}s")
            time.sleep(0.005)
        return time.perf_counter() - started, _cpu_seconds(process.pid)
    finally:
        process.terminate()
        process.wait(30)
        log.close()
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each measure (the median is reported)")
    parser.add_argument("--label", default="", help="suffix of the results file (e.g. 'before')")
    args = parser.parse_args()

    measures = {
        "agl-server: spawn to ready": (time_server_ready, f"< {SERVER_TARGET_S} s", SERVER_TARGET_S),
        "agl plugins": (lambda: time_command([sys.executable, "-m", "agl_core.cli", "plugins"]), "", None),
        "agl --help": (
            lambda: time_command([sys.executable, "-m", "agl_core.cli", "--help"]),
            f"< {HELP_TARGET_S} s",
            HELP_TARGET_S,
        ),
    }
    report = Report(
        "Start-up times (fresh process each run)",
        context={"runs": args.runs, "loadavg": os.getloadavg(), "label": args.label},
    )
    print(f"{report.title}: {args.runs} runs each, load average {os.getloadavg()[0]:.2f}")
    raw: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    for name, (measure, target, limit) in measures.items():
        measure()  # warm the page cache once; the runs measure a warm start, as a user's second try
        samples = [measure() for _ in range(args.runs)]
        raw[name] = [wall for wall, _ in samples]
        cpu[name] = [used for _, used in samples]
        median = statistics.median(raw[name])
        met = None if limit is None else median < limit
        report.add(f"{name} (median)", median, "s", target=target, met=met, note=f"max {max(raw[name]):.2f} s")
        report.add(f"{name}: CPU time (median)", statistics.median(cpu[name]), "s")
    report.context["samples_s"] = raw
    report.context["cpu_samples_s"] = cpu
    print()
    print(report.table())
    path = report.save("startup_bench" + (f"-{args.label}" if args.label else ""))
    print(f"\nsaved {saved_as(path)}")
    print(json.dumps({k: round(statistics.median(v), 3) for k, v in raw.items()}))
    print(json.dumps({f"{k} (CPU)": round(statistics.median(v), 3) for k, v in cpu.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
