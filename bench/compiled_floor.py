"""The ack floor of agl-server with its store writer's span path compiled by mypyc.

Why: with eight closed-loop span writers, agl's store writer runs about 12 us of Python per span
(notes of issue 16), and the issue allows "a compiled hot path where a well-kept library offers
one". mypyc, mypy's compiler for type-annotated Python (black and mypy ship compiled with it),
compiles modules as they are written. This floor is agl-server itself, the same code and
settings, with the five modules every span goes through on the writer compiled:

- ``agl_core/store/lmdb/span_write.py``: the writer's span operation (placement, sequence ids);
- ``agl_core/store/lmdb/span_ids.py``: the span-id filters (resent spans);
- ``agl_core/store/lmdb/span_id_log.py``: the span-id logs behind them;
- ``agl_core/store/lmdb/span_chunks.py``: packing spans into chunks;
- ``agl_core/store/wire.py``: the header views and the sequence-id field.

The build is a copy of ``agl_core`` under ``bench/.bin/agl-mypyc/<hash of its sources>``, compiled
there once (about 40 s; again after any change to agl_core). The server runs from that copy (its
``agl_server`` from this checkout) with ``AGL_SPAN_LOOP=python``; before it is reported ready,
mypyc's library of this build must be mapped in its memory (``compiled_in``), or the floor fails
rather than measure plain Python under this name. Its
data directory is a copy of agl-server's in the same bench run (the rollouts and attempts the
batches name), as for ``agl-split``.

    python bench/compiled_floor.py PORT_FILE DATA_DIR BUILD_DIR   # store_bench --floors agl-mypyc runs it
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "servers", ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

MODULES = (
    "agl_core/store/lmdb/span_write.py",
    "agl_core/store/lmdb/span_ids.py",
    "agl_core/store/lmdb/span_id_log.py",
    "agl_core/store/lmdb/span_chunks.py",
    "agl_core/store/wire.py",
)
BUILDS = ROOT / "bench" / ".bin" / "agl-mypyc"  # ignored by git


class CompilerMissing(Exception):
    """mypyc or a C compiler is not installed here: the floor is skipped, with this reason."""


def build() -> Path:
    """The compiled copy of agl_core for the current sources, built if there is none yet."""
    if importlib.util.find_spec("mypyc") is None:
        raise CompilerMissing("mypyc is not installed (it comes with mypy: pip install mypy)")
    if shutil.which(os.environ.get("CC", "cc")) is None:
        raise CompilerMissing("no C compiler (cc) on PATH for mypyc's output")
    import mypy.version

    digest = hashlib.sha256(mypy.version.__version__.encode())
    for source in sorted((ROOT / "agl_core").rglob("*.py")):
        digest.update(str(source.relative_to(ROOT)).encode() + b"\0" + source.read_bytes())
    target = BUILDS / digest.hexdigest()[:16]
    if (target / "built").exists():
        return target
    shutil.rmtree(BUILDS, ignore_errors=True)  # builds of older sources
    # Without the Cython span loop (span_loop.pyx, built in place by pip install -e): this build
    # measures agl's Python as mypyc compiles it, so the store must run span_write.ingest.
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "span_loop.c")
    shutil.copytree(ROOT / "agl_core", target / "agl_core", ignore=ignore)
    # protobuf ships no type stubs: its messages are Any to mypy, as they are to this code.
    command = [sys.executable, "-m", "mypyc", "--ignore-missing-imports", *MODULES]
    done = subprocess.run(command, cwd=target, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise SystemExit(f"mypyc failed in {target} (exit {done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")
    (target / "built").touch()
    return target


def compiled_in(pid: int, build_dir: Path) -> list[str]:
    """The compiled modules of ``build_dir`` that process ``pid`` runs.

    mypyc compiles ``MODULES`` into one library (``<hash>__mypyc...so``) with a small shim per
    module. A module imported first by another compiled one is made by that library without its
    shim being loaded (span_path imports span_write before anything imports span_ids or
    span_chunks), so the library mapped from this build counts for every module whose shim the
    build holds; a module imported as Python would have neither."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    library = any(str(build_dir) in line and "__mypyc.cpython" in line for line in maps.splitlines())
    compiled = []
    for module in MODULES:
        shim = str(build_dir / module.removesuffix(".py")) + ".cpython"
        if shim in maps or (library and any((build_dir / module).parent.glob(Path(module).stem + ".cpython*.so"))):
            compiled.append(module)
    return compiled


def main(port_file: str, data: str, build_dir: str) -> None:
    # Imported here, not above: build() is also used before anything imports agl_core
    # (ingest_cpu_bench.py --compiled), which must then come from the build.
    from split_ingest_floor import serve_agl_server_floor

    build = Path(build_dir).resolve()
    # agl_core from the build (first on the path, and the working directory `python -m` puts before
    # it), agl_server from this checkout.
    os.chdir(build)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(build), str(ROOT / "servers")]), "AGL_SPAN_LOOP": "python"}

    def runs_compiled(server: Any) -> None:
        loaded = compiled_in(server.process.pid, build)
        if len(loaded) != len(MODULES):
            missing = sorted(set(MODULES) - set(loaded))
            raise SystemExit(f"agl-server runs without the compiled {', '.join(missing)}: see {server.log_path}")

    serve_agl_server_floor(port_file, data, env, "agl-mypyc-server.log", runs_compiled)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
