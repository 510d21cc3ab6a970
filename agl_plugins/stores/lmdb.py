"""The embedded LMDB store backend, as a plugin (``agl-server --store lmdb``, the default)."""

from __future__ import annotations

from typing import Any

from agl_core.plugins import hookimpl
from agl_core.store.lmdb import LmdbBackend


def open_lmdb(path: str, *, map_size: int | None = None, sync: bool = True, **unknown: Any) -> LmdbBackend:
    if unknown:
        raise TypeError(f"the lmdb store takes the options map_size and sync, not {', '.join(sorted(unknown))}")
    return LmdbBackend(path, sync=sync, **({"map_size": int(map_size)} if map_size else {}))


@hookimpl
def agl_store_backends() -> dict[str, Any]:
    return {"lmdb": open_lmdb}
