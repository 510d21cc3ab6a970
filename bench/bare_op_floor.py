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
import sys
import tempfile
from pathlib import Path

import lmdb

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "servers", ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bare_span_op import PREFIX  # noqa: E402

from agl_core.store.lmdb.compact_copy import MAX_DBS  # noqa: E402

# Run by the server's interpreter at start-up (site imports ``sitecustomize`` from its path).
SITECUSTOMIZE = f"""\
import sys
sys.path.insert(0, {str(ROOT / "bench")!r})
import bare_span_op
bare_span_op.install()
"""


def bare_spans(data: str) -> int:
    """Spans stored under the bare operation's keys in ``data`` (the floor's server has stopped)."""
    with lmdb.open(data, readonly=True, lock=False, max_dbs=MAX_DBS) as env:
        db = env.open_db(b"spans", create=False)
        with env.begin(db=db) as txn:
            cursor = txn.cursor()
            if not cursor.set_range(PREFIX):
                return 0
            return sum(1 for key in cursor.iternext(values=False) if key.startswith(PREFIX))


def main(port_file: str, data: str) -> None:
    from split_ingest_floor import serve_agl_server_floor

    with tempfile.TemporaryDirectory(prefix="agl-bare-op-site-") as site:
        Path(site, "sitecustomize.py").write_text(SITECUSTOMIZE)
        path = os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH", "")]))
        serve_agl_server_floor(port_file, data, {**os.environ, "PYTHONPATH": path}, "agl-bare-op-server.log")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
