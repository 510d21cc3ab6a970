#!/usr/bin/env python3
"""Generate the Python protobuf and gRPC modules of ``protos/`` into ``agl_core/proto``.

buf drives the Go and TypeScript generators (``buf.gen.yaml``), but it cannot run the Python
gRPC plugin that ships inside the ``grpcio-tools`` wheel, so Python goes through
``grpc_tools.protoc`` here. protoc writes imports as ``from agl.v1 import x_pb2``; they are
rewritten to ``from agl_core.proto import x_pb2`` so that the generated code lives in one
package of agl_core and needs nothing on ``sys.path``.

``--check`` regenerates into a temporary directory and fails when the checked-in files differ,
which is how CI catches stale generated code.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PROTO_PACKAGE_DIR = PROTO_ROOT / "agl" / "v1"
OUT_DIR = ROOT / "agl_core" / "proto"
IMPORT_RE = re.compile(r"^from agl\.v1 import (\w+)", re.MULTILINE)
INIT_TEXT = '"""Generated protobuf and gRPC modules for package agl.v1 (do not edit; see scripts/gen_protos.py)."""\n'


def generate(out_dir: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_PACKAGE_DIR.glob("*.proto"))
    with tempfile.TemporaryDirectory() as raw:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={raw}",
            f"--pyi_out={raw}",
            f"--grpc_python_out={raw}",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed; see the messages above")
        out_dir.mkdir(parents=True, exist_ok=True)
        for produced in sorted((Path(raw) / "agl" / "v1").iterdir()):
            text = IMPORT_RE.sub(r"from agl_core.proto import \1", produced.read_text())
            if produced.name.endswith("_pb2_grpc.py") and "Stub" not in text:
                continue  # protoc writes a gRPC module for every file, even those without services
            (out_dir / produced.name).write_text(text)
    (out_dir / "__init__.py").write_text(INIT_TEXT)


def check() -> int:
    with tempfile.TemporaryDirectory() as fresh:
        generate(Path(fresh))
        cmp = filecmp.dircmp(fresh, OUT_DIR, ignore=["__pycache__"])
        stale = cmp.left_only + cmp.right_only + cmp.diff_files
        if stale:
            print(
                "Generated Python code in agl_core/proto is stale: "
                + ", ".join(sorted(stale))
                + ". Run `python scripts/gen_protos.py` and commit the result.",
                file=sys.stderr,
            )
            return 1
    print("agl_core/proto is up to date with protos/")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the checked-in code is stale")
    args = parser.parse_args()
    if args.check:
        return check()
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    generate(OUT_DIR)
    print(f"generated {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
