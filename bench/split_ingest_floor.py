"""The ack floor of IngestSpans served in two processes: gRPC in one, agl's store in another.

Why: with eight closed-loop span writers agl-server's one busy core is its own Python, and most of
it is grpc.aio's work on the event loop, not the store's (notes of issue 16). Serving the span
stream outside the process that holds the store would give each its own GIL and core. This floor
measures what that split would give before agl-server is rebuilt around it:

- the **edge** (this script) is a grpc.aio server doing for each batch what agl-server's
  IngestSpans does on its event loop: decode the request as received (``ReceivedSpans``), the edge
  check (``ingest_checked``: the whole-batch parse for readability), then hand the request's bytes
  to the store process and ack with its answer;
- the **store** (``--store``, started by the edge) is agl's own ``LmdbStore``, durable as
  agl-server's: every batch goes through ``ingest_span_bytes``, the same writer, group commits,
  placement, de-duplication and span-id logs as agl-server's, over a Unix socket (frames of a
  length, a request number and the bytes; answers in any order, matched by number).

Both processes take agl-server's garbage collector and GIL switch interval settings, but not its
pinning of Python threads to one CPU while busy: each process pinned itself (to the CPU its loop was
on, or edge and store to CPUs 1 and 0 and the other way round) and the eight writers' ack p99 was
7.2-7.9 ms, against 6.1 ms with the kernel placing the threads. The store's data directory is a
copy of the one agl-server ran on in the same bench run, so the rollouts and attempts the batches
name exist.

    python bench/split_ingest_floor.py PORT_FILE DATA_DIR         # the edge; starts the store
    python bench/split_ingest_floor.py --store SOCKET DATA_DIR    # the store (the edge runs this)
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "servers"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from raw_grpc_server import write_port  # noqa: E402

from agl_core.proto import store_pb2 as s  # noqa: E402
from agl_core.store import LmdbStore  # noqa: E402
from agl_core.store.wire import IngestSpansRequestView  # noqa: E402
from agl_server.span_checks import ReceivedSpans, ingest_checked  # noqa: E402
from agl_server.tuning import Tuning  # noqa: E402

HEADER = struct.Struct("<IQ")  # payload length, request number


class Frames(asyncio.Protocol):
    """One end of the socket: frames out with :meth:`send`, each frame in to ``on_frame``."""

    def __init__(self, on_frame: Callable[[int, bytes], None]) -> None:
        self._on_frame = on_frame
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        # Every whole frame that arrived, in one pass: a busy peer's frames come several at a time.
        while len(buffer) - start >= HEADER.size:
            size, number = HEADER.unpack_from(buffer, start)
            end = start + HEADER.size + size
            if end > len(buffer):
                break
            self._on_frame(number, bytes(buffer[start + HEADER.size : end]))
            start = end
        del buffer[:start]

    def send(self, number: int, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(HEADER.pack(len(payload), number) + payload)


# --- the store process ------------------------------------------------------------------------------


async def serve_store(socket_path: str, data: str) -> None:
    store = LmdbStore(data)  # synced commits, as agl-server's default durability
    backend = store.backend
    loop = asyncio.get_running_loop()
    link: Frames
    writing: set[asyncio.Task[None]] = set()  # held until done (the loop keeps only weak references)

    async def write(number: int, payload: bytes) -> None:
        view = IngestSpansRequestView.FromString(payload)
        response = await backend.ingest_span_bytes(list(view.spans), payload)
        link.send(number, response.SerializeToString())

    def on_frame(number: int, payload: bytes) -> None:
        task = loop.create_task(write(number, payload))
        writing.add(task)
        task.add_done_callback(writing.discard)

    _, link = await loop.create_unix_connection(lambda: Frames(on_frame), socket_path)
    Tuning.from_env().apply_after_start()
    try:
        await link.closed  # the edge closes the socket when it stops
    finally:
        await store.close()


# --- the edge ---------------------------------------------------------------------------------------


class StoreLink:
    """The edge's end of the socket: a batch's bytes out, the store's answer back."""

    def __init__(self) -> None:
        self._numbers = itertools.count()
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self.frames = Frames(self._answered)

    def _answered(self, number: int, payload: bytes) -> None:
        future = self._waiting.pop(number)
        if not future.done():
            future.set_result(payload)

    async def store(self, raws: list[bytes], whole: bytes | None) -> s.IngestSpansResponse:
        if whole is None:  # some spans were refused at the edge: the good ones, as a request
            whole = IngestSpansRequestView(spans=raws).SerializeToString()
        number = next(self._numbers)
        future = asyncio.get_running_loop().create_future()
        self._waiting[number] = future
        self.frames.send(number, whole)
        return s.IngestSpansResponse.FromString(await future)


async def serve_edge(port_file: str, listener: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    link = StoreLink()
    accepted, _ = await asyncio.wait_for(loop.sock_accept(listener), 60)  # the store process, started
    await loop.connect_accepted_socket(lambda: link.frames, accepted)

    async def ingest(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        async for raw in requests:
            received = ReceivedSpans(raw)
            response = await ingest_checked(list(received.spans), link.store, whole=raw)
            response.batch_id = received.batch_id
            yield response.SerializeToString()

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    handlers = {"IngestSpans": grpc.stream_stream_rpc_method_handler(ingest)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("agl.v1.LightningStoreService", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    Tuning.from_env().apply_after_start()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)  # the bench stops a floor with SIGTERM
    write_port(port_file, port)
    await stop.wait()
    await server.stop(None)
    assert link.frames.transport is not None
    link.frames.transport.close()  # the store process closes its store and exits


def main_edge(port_file: str, data: str) -> None:
    copy_agl_server_data(data)
    socket_path = os.path.join(os.path.dirname(os.path.abspath(data)), "split-store.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(socket_path)
        listener.listen(1)
        listener.setblocking(False)
        store = subprocess.Popen([sys.executable, __file__, "--store", socket_path, data])
        try:
            run(serve_edge(port_file, listener))
        finally:
            # Only once the store process has exited is its data complete for the bench to count.
            try:
                store.wait(timeout=60)
            except subprocess.TimeoutExpired:
                store.kill()
                raise


def agl_server_data(data: str) -> str:
    """agl-server's data directory in the same bench run: ``data`` next to this floor's."""
    return os.path.join(os.path.dirname(os.path.abspath(data)), "data")


def copy_agl_server_data(data: str) -> None:
    """The store's directory: a copy of agl-server's, which holds the rollouts and attempts the
    batches name (agl-server has stopped by then)."""
    source = agl_server_data(data)
    if not os.path.isdir(source):
        raise SystemExit(f"{source}: no agl-server data to copy; this floor runs after agl-server in store_bench")
    shutil.copytree(source, data, ignore=shutil.ignore_patterns("lock.mdb"), dirs_exist_ok=True)


def serve_agl_server_floor(
    port_file: str, data: str, env: dict[str, str], log_name: str, check: Callable[[Any], None] | None = None
) -> None:
    """Run agl-server itself as a floor (``agl-mypyc``, ``agl-bare-op``): on a copy of agl-server's
    data, with ``env``, logging to ``log_name`` beside ``data``. Once it serves, ``check(server)``
    (a :class:`ServerProcess`) may refuse it by raising; then its port is written and it runs until
    the bench's SIGTERM (or a Ctrl-C), and it is stopped before this returns, so that its data is
    complete for the bench to count."""
    from agl_server.process import ServerProcess

    copy_agl_server_data(data)
    server = ServerProcess(data, env=env, log_path=os.path.join(os.path.dirname(data), log_name))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    try:
        assert server.process is not None and server.bound_port is not None
        if check is not None:
            check(server)
        write_port(port_file, server.bound_port)
        stop.wait()
    finally:
        server.close(timeout=60)


def agl_spans_added(data: str) -> int:
    """The spans the floor's store holds beyond those of the copy it started from, counted by agl's
    store once the floor has stopped. (In a thread: the bench calls it from inside its event loop.)"""

    async def spans(path: str) -> int:
        store = LmdbStore(path)
        try:
            return int((await store.stats())["spans"])
        finally:
            await store.close()

    with ThreadPoolExecutor(1) as thread:
        return (
            thread.submit(asyncio.run, spans(data)).result()
            - thread.submit(asyncio.run, spans(agl_server_data(data))).result()
        )


def run(main: Any) -> None:
    try:
        import uvloop

        uvloop.run(main)
    except ImportError:
        asyncio.run(main)


if __name__ == "__main__":
    if sys.argv[1] == "--store":
        run(serve_store(sys.argv[2], sys.argv[3]))
    else:
        main_edge(sys.argv[1], sys.argv[2])
