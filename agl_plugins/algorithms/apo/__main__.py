"""``python -m agl_plugins.algorithms.apo history``: what an APO run tried and why its prompt won.

python -m agl_plugins.algorithms.apo history --server localhost:4747 [--run RUN_ID]
python -m agl_plugins.algorithms.apo history --data-dir ./.agl-data [--run RUN_ID]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path

from agl_plugins.algorithms.apo.candidates import format_history, load_history


async def _history(args: argparse.Namespace) -> int:
    if args.server:
        from agl_core.client import GrpcStore

        store = GrpcStore(args.server, token=args.token)
    else:
        from agl_core.store import LmdbStore

        # Opening a directory that holds no store would create an empty one and report nothing:
        # a misspelt path must be an error, not an empty history.
        if not (Path(args.data_dir) / "data.mdb").is_file():
            print(
                f"apo history: {args.data_dir!r} holds no agl store (no data.mdb); give the --data-dir an APO "
                "run wrote (e.g. examples/apo_orders/train.py --data-dir DIR), or --server HOST:PORT",
                file=sys.stderr,
            )
            return 2
        store = LmdbStore(args.data_dir)
    try:
        candidates = await load_history(store, args.run)
    finally:
        await store.close()
    if args.json:
        print(json.dumps([asdict(c) for c in candidates], indent=2))
    else:
        print(format_history(candidates))
    return 0 if candidates else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agl_plugins.algorithms.apo", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    history = commands.add_parser("history", help="print the candidates of an APO run and the winner's lineage")
    where = history.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", help="an agl-server address (host:port)")
    where.add_argument("--data-dir", help="an agl data directory (embedded LMDB store; not while a server holds it)")
    history.add_argument("--token", help="the server's bearer token")
    history.add_argument("--run", help="the run id (default: the latest run)")
    history.add_argument("--json", action="store_true", help="print the candidates as JSON")
    args = parser.parse_args(argv)
    return asyncio.run(_history(args))


if __name__ == "__main__":
    sys.exit(main())
