"""The ack floor of a compiled IngestSpans edge in front of agl's own store: Rust's tonic serves the
stream, agl's ``LmdbStore`` in a Python process stores every batch.

Why: a native IngestSpans front end is the one lever on issue 16's durable ack figures measured as
large enough, but only as a floor that stores spans its own way (``rust-tonic-lmdb``: none of agl's
checks, indexes, de-duplication or sequence ids). Rewriting agl's span path in Rust is a second
store; this floor asks whether the edge alone would do: the stream's gRPC work compiled (decoding,
UTF-8 checks, HTTP/2), the store's work left to agl's Python and its compiled span loop, as
agl-server runs them.

- the **edge** is ``agl-rust-ackfloor --forward SOCKET`` (bench/floors/rust-ackfloor): it decodes
  each batch whole (prost, UTF-8 included) and hands the request's bytes over a Unix socket;
- the **store** (``--store``) is agl's ``LmdbStore``, durable as agl-server's, on a copy of the data
  agl-server ran on in the same bench run. It does per batch what agl-server's IngestSpans does after
  the edge check: ``submit_span_bytes`` on the event loop, the answer sent from the write's done
  callback (no task per batch), under agl-server's interpreter settings (``Tuning``: garbage
  collector, switch interval, Python threads pinned to one CPU while busy; the Rust edge's threads
  are not Python's and keep every CPU).

Frames as in ``split_ingest_floor`` (a length, a request number, the bytes).

    python bench/rust_edge_floor.py PORT_FILE DATA_DIR EDGE    # starts the edge (its binary) and the store
    python bench/rust_edge_floor.py --store SOCKET DATA_DIR    # the store (started by the above)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "servers", ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from split_ingest_floor import Frames, copy_agl_server_data, run  # noqa: E402

from agl_core.proto import store_pb2 as s  # noqa: E402
from agl_core.store import LmdbStore  # noqa: E402
from agl_core.store.wire import IngestSpansRequestView  # noqa: E402
from agl_server.tuning import Tuning  # noqa: E402

CONNECT_SECONDS = 30


async def serve_store(socket_path: str, data: str) -> None:
    store = LmdbStore(data)  # synced commits, as agl-server's default durability
    backend = store.backend
    link: Frames

    def answer(number: int, pending: Any) -> None:
        link.send(number, pending.answer().SerializeToString())

    def on_frame(number: int, payload: bytes) -> None:
        view = IngestSpansRequestView.FromString(payload)
        pending = backend.submit_span_bytes(list(view.spans), payload)
        if pending.write is None:  # nothing to write (every span refused)
            answer(number, pending)
        else:
            pending.write.add_done_callback(lambda write: _answered(write, number, pending))

    def _answered(write: asyncio.Future[Any], number: int, pending: Any) -> None:
        if write.cancelled() or write.exception() is not None:
            link.send(number, s.IngestSpansResponse().SerializeToString())  # the edge sees nothing acked
            raise SystemExit(f"a write failed: {write.exception() if not write.cancelled() else 'cancelled'}")
        answer(number, pending)

    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + CONNECT_SECONDS
    while True:  # the edge listens once it has started
        try:
            _, link = await loop.create_unix_connection(lambda: Frames(on_frame), socket_path)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)
    tuning = Tuning.from_env()
    tuning.apply_after_start()
    pinning = tuning.start_pinning()  # AGL_SERVER_PYTHON_CPU=off leaves the threads spread
    try:
        await link.closed  # the edge's socket closes when it stops
    finally:
        if pinning is not None:
            pinning.cancel()
        await store.close()


def main(port_file: str, data: str, edge_binary: str) -> None:
    copy_agl_server_data(data)
    socket_path = os.path.join(os.path.dirname(os.path.abspath(data)), "rust-edge.sock")
    edge = subprocess.Popen([edge_binary, port_file, "--forward", socket_path])
    store = subprocess.Popen([sys.executable, __file__, "--store", socket_path, data])
    # The bench stops a floor with SIGTERM: the edge stops, its socket closes, the store closes
    # its environment and exits; only then is its data complete for the bench to count.
    signal.signal(signal.SIGTERM, lambda *_: edge.terminate())
    cpu: dict[str, float] = {}
    try:
        cpu["edge"] = _cpu_seconds_at_exit(edge)
    finally:
        if edge.poll() is None:
            edge.kill()
        deadline = threading.Timer(60, store.kill)  # the store closes its environment, then exits
        deadline.start()
        try:
            cpu["store"] = _cpu_seconds_at_exit(store)
        finally:
            deadline.cancel()
    # Which process the CPU went to, for the whole run (both phases of the bench, warm-up included).
    total = sum(cpu.values())
    print(
        f"agl-rust-edge: the Rust edge used {cpu['edge']:.2f} s of CPU ({cpu['edge'] / total:.0%}), "
        f"agl's store process {cpu['store']:.2f} s ({cpu['store'] / total:.0%})",
        file=sys.stderr,
    )


def _cpu_seconds_at_exit(process: subprocess.Popen[bytes]) -> float:
    """Waits for ``process`` and returns the CPU (user and system) it used, from its exit's rusage."""
    while True:
        try:
            _, status, usage = os.wait4(process.pid, 0)
            break
        except InterruptedError:  # pragma: no cover - retried by Python itself since 3.5
            continue
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    if sys.argv[1] == "--store":
        run(serve_store(sys.argv[2], sys.argv[3]))
    else:
        main(sys.argv[1], sys.argv[2], sys.argv[3])
