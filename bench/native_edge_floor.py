"""The ack floor of an in-process native IngestSpans edge: tonic serves the span stream on its own
threads inside the process that holds agl's store, and hands each batch to the store's writer with
no event loop in between.

Why: the ``agl-rust-edge`` floor (a compiled edge, agl's store in another process) showed that
taking a batch off a socket in Python costs as much as grpc.aio's share of agl-server
(docs/span-acks.md). What a native front end can still save is Python per batch before the writer:
this floor has none. ``agl_native_edge`` (bench/floors/native-edge, a PyO3 extension built with
cargo) decodes each batch (prost, UTF-8 included) and queues its bytes; one Python thread takes
whatever is queued (blocking with the GIL released) and does what agl-server's IngestSpans does
after the edge check (``submit_span_bytes``: the ids' check, the writer's span operation, the same
group commits), with a completion object in place of the event loop's future. The writer delivers
each group on the event loop as always (effects first, then the completions), where the batch's
answer goes back to tonic (``Edge.ack``).

It runs under agl-server's interpreter settings (``Tuning``: garbage collector, switch interval, the
Python threads pinned to one CPU while busy; tonic's threads are not Python's and keep every CPU).
Its data directory is a copy of agl-server's in the same bench run, as for ``agl-split``. It uses
the store's internals (its writer and span operation): a floor, not an API.

    python bench/native_edge_floor.py PORT_FILE DATA_DIR MODULE_DIR   # store_bench --floors agl-native-edge
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "servers", ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from raw_grpc_server import write_port  # noqa: E402
from split_ingest_floor import copy_agl_server_data, run  # noqa: E402

from agl_core.errors import AglError  # noqa: E402
from agl_core.proto import store_pb2 as s  # noqa: E402
from agl_core.store import LmdbStore  # noqa: E402
from agl_core.store.lmdb.spans import complete_answer, placeable_spans  # noqa: E402
from agl_core.store.wire import IngestSpansRequestView  # noqa: E402
from agl_server.tuning import Tuning  # noqa: E402

# tonic's runtime threads: one stays off the Python threads' CPU, the kernel places it.
EDGE_THREADS = int(os.environ.get("AGL_NATIVE_EDGE_THREADS", "1"))
# Where a batch is acked: "loop", in the writer's delivery on the event loop (the writer's contract:
# a group's effects are published before any caller hears of it), or "writer", on the writer thread
# right after the commit (a what-if: one hand-over less per group, effects published after the ack).
ACK_ON = os.environ.get("AGL_NATIVE_EDGE_ACK", "loop")
# The writer's span operation: agl's ("agl"), or the bare one of bench/bare_span_op.py ("bare", the
# floor agl-native-edge-bare): a native edge and a native span operation at no CPU together.
SPAN_OP = os.environ.get("AGL_NATIVE_EDGE_SPAN_OP", "agl")
INTERNAL = 13  # gRPC's INTERNAL


class Completion:
    """What the store's writer needs of a caller's future (``cancelled``, ``done``, ``set_result``,
    ``set_exception``, ``cancel``), answering the batch through the edge instead. The writer calls
    it on the event loop thread, after the group's commit and its effects."""

    __slots__ = ("acked", "edge", "response", "ticket")

    def __init__(self, edge: Any, ticket: int, response: s.IngestSpansResponse) -> None:
        self.edge = edge
        self.ticket = ticket
        self.response = response
        self.acked = False

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return self.acked

    def cancel(self) -> bool:
        self.edge.fail(self.ticket, 1, "cancelled")
        return True

    def set_result(self, result: tuple[int, list[int], list[tuple[int, int, str]]]) -> None:
        self.acked = True
        self.edge.ack(self.ticket, complete_answer(self.response, result).SerializeToString())

    def set_exception(self, error: BaseException) -> None:
        if isinstance(error, AglError):
            self.edge.fail(self.ticket, error.code.value[0], error.message)
        else:
            self.edge.fail(self.ticket, INTERNAL, f"the store failed: {error}")


def intake(edge: Any, store: LmdbStore) -> None:
    """The Python thread between tonic and the writer: every queued batch, as ``submit_span_bytes``
    would hand it over, until the edge closes."""
    backend = store.backend
    writer = backend._writer
    assert writer is not None
    while (batches := edge.take(1.0)) is not None:
        handed = []
        for ticket, whole in batches:
            response, valid = placeable_spans(list(IngestSpansRequestView.FromString(whole).spans), whole)
            if not valid:
                edge.ack(ticket, response.SerializeToString())
                continue
            operation = backend._operation(lambda tx, valid=valid: backend._ingest_op(tx, valid))
            handed.append((operation, Completion(edge, ticket, response)))
        if handed:
            with writer._cond:  # Writer.submit's queue, for every batch taken at once
                writer._pending.extend(handed)
                writer._cond.notify()


class AckOnWriter:
    """The writer's loop, as the writer sees it, for ``AGL_NATIVE_EDGE_ACK=writer``: a group's
    delivery first acks its batches that succeeded, on the writer thread, then goes to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> Any:
        if len(args) == 3:  # Writer._deliver(group, outcomes, effects)
            group, outcomes = args[0], args[1]
            for (_, completion), (ok, value) in zip(group, outcomes, strict=True):
                if ok and isinstance(completion, Completion):
                    completion.set_result(value)
        return self.loop.call_soon_threadsafe(callback, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loop, name)


async def serve(port_file: str, data: str) -> None:
    import agl_native_edge

    if SPAN_OP == "bare":
        import bare_span_op

        bare_span_op.install()
    elif SPAN_OP != "agl":
        raise SystemExit(f"AGL_NATIVE_EDGE_SPAN_OP={SPAN_OP!r}: give agl or bare")
    store = LmdbStore(data)  # synced commits, as agl-server's default durability
    writer = store.backend._ensure_started()  # the writer, delivering on this loop
    if ACK_ON == "writer":
        writer._loop = AckOnWriter(writer._loop)  # type: ignore[assignment]
    elif ACK_ON != "loop":
        raise SystemExit(f"AGL_NATIVE_EDGE_ACK={ACK_ON!r}: give loop or writer")
    edge = agl_native_edge.Edge("127.0.0.1", EDGE_THREADS)
    taker = threading.Thread(target=intake, args=(edge, store), name="agl-native-intake", daemon=True)
    taker.start()
    tuning = Tuning.from_env()
    tuning.apply_after_start()
    pinning = tuning.start_pinning()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)  # the bench stops a floor so
    write_port(port_file, edge.port)
    await stop.wait()
    usage = thread_cpu()  # over the run, before the threads end
    if pinning is not None:
        pinning.cancel()
    edge.close()
    await asyncio.get_running_loop().run_in_executor(None, taker.join)
    await store.close()  # runs what the writer still holds, then closes the environment
    print(f"agl-native-edge: CPU by thread over the run: {usage}", file=sys.stderr)


def thread_cpu() -> str:
    """Each thread's CPU seconds so far (user and system), summed by thread name: Python's name for
    Python's threads, the kernel's for the others (tonic's are "agl-native-edg")."""
    python_names = {thread.native_id: thread.name for thread in threading.enumerate()}
    by_name: dict[str, float] = {}
    for thread in psutil.Process().threads():
        name = python_names.get(thread.id)
        if name is None:
            try:
                name = Path(f"/proc/self/task/{thread.id}/comm").read_text().strip()
            except OSError:  # the thread ended meanwhile
                continue
        by_name[name] = by_name.get(name, 0.0) + thread.user_time + thread.system_time
    return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in sorted(by_name.items(), key=lambda kv: -kv[1]))


def main(port_file: str, data: str, module_dir: str) -> None:
    sys.path.insert(0, module_dir)
    copy_agl_server_data(data)
    run(serve(port_file, data))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
