"""The ack floor of agl-server with its store writer's span operation bare (``bench/bare_span_op.py``):
the most a native span operation could take off agl-server's acks.

agl-server itself, the same code, settings and durability, with the writer's span operation replaced
in the server's process before it starts (a ``sitecustomize`` on its ``PYTHONPATH``): the span stream,
the edge check, the ids' check, the group commits and the answers are agl-server's. Its data
directory is a copy of agl-server's in the same bench run, as for ``agl-split``. After the run, the
bench counts the spans under the bare operation's keys (:func:`bare_spans`): a server that ran
agl's own operation instead stored none of them, and the floor's row says so.

    python bench/bare_op_floor.py PORT_FILE DATA_DIR   # store_bench --floors agl-bare-op runs it
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

import lmdb

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "servers", ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bare_span_op import PREFIX  # noqa: E402

# Run by the server's interpreter at start-up (site imports ``sitecustomize`` from its path).
SITECUSTOMIZE = f"""\
import sys
sys.path.insert(0, {str(ROOT / "bench")!r})
import bare_span_op
bare_span_op.install()
"""


def bare_spans(data: str) -> int:
    """Spans stored under the bare operation's keys in ``data`` (the floor's server has stopped)."""
    with lmdb.open(data, readonly=True, lock=False, max_dbs=64) as env:
        db = env.open_db(b"spans", create=False)
        with env.begin(db=db) as txn:
            cursor = txn.cursor()
            if not cursor.set_range(PREFIX):
                return 0
            return sum(1 for key in cursor.iternext(values=False) if key.startswith(PREFIX))


def main(port_file: str, data: str) -> None:
    from raw_grpc_server import write_port
    from split_ingest_floor import copy_agl_server_data

    from agl_server.process import ServerProcess

    copy_agl_server_data(data)
    with tempfile.TemporaryDirectory(prefix="agl-bare-op-site-") as site:
        Path(site, "sitecustomize.py").write_text(SITECUSTOMIZE)
        path = os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH", "")]))
        server = ServerProcess(
            data,
            env={**os.environ, "PYTHONPATH": path},
            log_path=os.path.join(os.path.dirname(data), "agl-bare-op-server.log"),
        )
        stop = threading.Event()  # set by the bench's SIGTERM (or a Ctrl-C), to stop the server
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        server.start()
        try:
            assert server.bound_port is not None
            write_port(port_file, server.bound_port)
            stop.wait()
        finally:
            # Only once the server has stopped is its data complete for the bench to count.
            server.close(timeout=60)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
