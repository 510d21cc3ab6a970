"""Bare IngestSpans handlers that parse each batch whole and ack it without storing anything, one per
server stack: grpc.aio (bench/raw_grpc_server.py, agl-server's own stack), grpc-go
(clients/go/cmd/agl-ackfloor) and Rust's tonic (bench/floors/rust-ackfloor). agl-loadgen's span-ack
writers run against each unchanged, so their ack latency there is the floor that stack sets on this
machine before any store work: whether a compiled front end would leave room for the store.

Two more store: ``rust-tonic-lmdb`` is the tonic handler putting every span into LMDB before its
ack (group commits, a sync each, none of agl's checks or indexes), the floor under any durable
store on this machine however it were compiled; ``rust-tonic-lmdb-nosync`` the same without syncs,
so the difference between the two is the disk's. And two are agl's own store: ``agl-split`` serves
the stream in one process and stores in another (bench/split_ingest_floor.py), ``agl-rust-edge``
the same with the stream served by the tonic handler (bench/rust_edge_floor.py), ``agl-native-edge``
serves it with tonic inside the store's process (bench/native_edge_floor.py), ``agl-mypyc`` is
agl-server with the writer's span path compiled by mypyc (bench/compiled_floor.py). Two bound a
native span operation: ``agl-bare-op`` is agl-server with the writer's span operation reduced to
its puts (bench/bare_op_floor.py, bench/bare_span_op.py), ``agl-native-edge-bare`` the native
edge floor with the same bare operation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import compiled_floor
import lmdb
from bare_op_floor import bare_spans
from common import ROOT
from cpu_split import spawning_on
from loadgen import BIN_DIR, build_go_command
from split_ingest_floor import agl_spans_added

# Crates of one workspace (bench/floors/Cargo.toml, one Cargo.lock); bench/floors/common is theirs.
RUST_CRATE = ROOT / "bench" / "floors" / "rust-ackfloor"
NATIVE_EDGE_CRATE = ROOT / "bench" / "floors" / "native-edge"
CARGO_TARGET = BIN_DIR / "cargo"  # under bench/.bin, ignored by git


class FloorUnavailable(Exception):
    """A floor whose toolchain is missing here: the bench reports it skipped, with this reason."""


@dataclass(frozen=True)
class Floor:
    name: str  # as given to --floors
    label: str  # in the rows' names
    # The server's command line, given its port file and its data directory; builds it first.
    command: Callable[[str, str], list[str]]
    # For a floor that stores spans: how many it stored, counted in its data directory once it has stopped.
    stored: Callable[[str], int] | None = None
    # Set in the server's environment, on top of the bench's.
    env: dict[str, str] = field(default_factory=dict)

    def data_dir(self, workdir: str) -> str:
        return os.path.join(workdir, f"{self.name}-data")


def _grpc_aio(port_file: str, data: str) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "raw_grpc_server.py"), port_file]


def _grpc_go(port_file: str, data: str) -> list[str]:
    return [str(build_go_command("agl-ackfloor")), "-port-file", port_file]


def _rust_tonic(port_file: str, data: str) -> list[str]:
    return [str(_build_rust_floor()), port_file]


def _rust_tonic_lmdb(port_file: str, data: str) -> list[str]:
    return [str(_build_rust_floor()), port_file, "--lmdb", data]


def _rust_tonic_lmdb_nosync(port_file: str, data: str) -> list[str]:
    return [str(_build_rust_floor()), port_file, "--lmdb-nosync", data]


def _agl_split(port_file: str, data: str) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "split_ingest_floor.py"), port_file, data]


def _agl_rust_edge(port_file: str, data: str) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "rust_edge_floor.py"), port_file, data, str(_build_rust_floor())]


def _agl_native_edge(port_file: str, data: str) -> list[str]:
    module_dir = _build_native_edge()
    return [sys.executable, str(ROOT / "bench" / "native_edge_floor.py"), port_file, data, str(module_dir)]


def _agl_bare_op(port_file: str, data: str) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "bare_op_floor.py"), port_file, data]


def _agl_mypyc(port_file: str, data: str) -> list[str]:
    try:
        build = compiled_floor.build()
    except compiled_floor.CompilerMissing as exc:
        raise FloorUnavailable(str(exc)) from exc
    return [sys.executable, str(ROOT / "bench" / "compiled_floor.py"), port_file, data, str(build)]


def _build_rust_floor() -> Path:
    _cargo_build(RUST_CRATE)
    return CARGO_TARGET / "release" / "agl-rust-ackfloor"


def _build_native_edge() -> Path:
    """The PyO3 extension ``agl_native_edge`` (for this Python, abi3), in a directory of its own to
    put on ``sys.path``."""
    _cargo_build(NATIVE_EDGE_CRATE)
    module_dir = BIN_DIR / "native-edge"
    module_dir.mkdir(parents=True, exist_ok=True)
    # Replaced whole (a new inode), so a process that still maps the old library is not disturbed.
    staged = module_dir / "agl_native_edge.abi3.so.tmp"
    shutil.copyfile(CARGO_TARGET / "release" / "libagl_native_edge.so", staged)
    os.replace(staged, module_dir / "agl_native_edge.abi3.so")
    return module_dir


def _cargo_build(crate: Path) -> None:
    cargo = shutil.which("cargo")
    if cargo is None:
        raise FloorUnavailable(f"cargo is not on PATH; install Rust (rustup) to build {crate.relative_to(ROOT)}")
    env = {
        **os.environ,
        "CARGO_TARGET_DIR": str(CARGO_TARGET),
        "PROTOC": str(_protoc()),
        "PYO3_PYTHON": sys.executable,  # the interpreter a PyO3 crate is built for
    }
    # --locked: the crates of the committed Cargo.lock, so every run measures the same code.
    command = [cargo, "build", "--release", "--locked", "--manifest-path", str(crate / "Cargo.toml")]
    subprocess.run(command, env=env, check=True, timeout=1200)


def _protoc() -> Path:
    """tonic's code generator runs ``$PROTOC``: grpcio-tools' protoc (a dev dependency), which sees
    the well-known types (google/protobuf/*.proto) shipped with it."""
    import grpc_tools

    includes = Path(grpc_tools.__file__).parent / "_proto"
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    wrapper = BIN_DIR / "protoc"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m grpc_tools.protoc -I"{includes}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def _lmdb_spans(data: str) -> int:
    """The spans the Rust floor put into its environment: one entry each in its sub-database "spans"."""
    with lmdb.open(data, readonly=True, lock=False, max_dbs=1) as env:
        with env.begin() as txn:
            return int(txn.stat(env.open_db(b"spans", txn=txn, create=False))["entries"])


FLOORS = {
    floor.name: floor
    for floor in (
        Floor("grpc.aio", "bare grpc.aio (no store)", _grpc_aio),
        Floor("grpc-go", "bare grpc-go (no store)", _grpc_go),
        Floor("rust-tonic", "bare Rust tonic (no store)", _rust_tonic),
        Floor("rust-tonic-lmdb", "Rust tonic, spans durably into LMDB", _rust_tonic_lmdb, _lmdb_spans),
        Floor("rust-tonic-lmdb-nosync", "Rust tonic, spans into LMDB unsynced", _rust_tonic_lmdb_nosync, _lmdb_spans),
        Floor("agl-split", "grpc.aio edge + agl store in another process", _agl_split, agl_spans_added),
        Floor("agl-rust-edge", "Rust tonic edge + agl store in another process", _agl_rust_edge, agl_spans_added),
        Floor("agl-native-edge", "tonic edge inside agl's store process", _agl_native_edge, agl_spans_added),
        Floor("agl-mypyc", "agl-server, writer's span path compiled (mypyc)", _agl_mypyc, agl_spans_added),
        Floor("agl-bare-op", "agl-server, writer's span operation bare", _agl_bare_op, bare_spans),
        Floor(
            "agl-native-edge-bare",
            "tonic edge inside agl's store process, writer's span operation bare",
            _agl_native_edge,
            bare_spans,
            {"AGL_NATIVE_EDGE_SPAN_OP": "bare"},  # native_edge_floor.py with bench/bare_span_op.py's operation
        ),
    )
}


def start_floor(floor: Floor, workdir: str, cpus: frozenset[int] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Build (where needed) and start ``floor``'s server, on ``cpus`` if given: the process and its address."""
    port_file = os.path.join(workdir, f"{floor.name}-port")
    command = floor.command(port_file, floor.data_dir(workdir))
    with spawning_on(cpus):
        process = subprocess.Popen(command, env={**os.environ, **floor.env} if floor.env else None)
    deadline = time.monotonic() + 30
    while not os.path.exists(port_file):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"the {floor.label} server did not start: {' '.join(command)}")
        time.sleep(0.02)
    return process, f"127.0.0.1:{Path(port_file).read_text()}"


def parse_floors(value: str) -> list[Floor]:
    """``--floors``: names separated by commas (or "none")."""
    if value.strip() == "none":
        return []
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in FLOORS]
    if unknown:
        raise SystemExit(f"--floors: unknown {', '.join(unknown)}; choose from {', '.join(FLOORS)} or none")
    return [FLOORS[name] for name in names]
