"""The embedded LMDB store backend, as a plugin (``agl-server --store lmdb``, the default)."""

from __future__ import annotations

from typing import Any

from agl_core.plugins import hookimpl
from agl_core.store.lmdb import LmdbBackend


def open_lmdb(
    path: str,
    *,
    map_size: int | None = None,
    sync: bool = True,
    resident_budget: int | None = None,
    span_id_filter_budget: int | None = None,
    **unknown: Any,
) -> LmdbBackend:
    if unknown:
        raise TypeError(
            "the lmdb store takes the options map_size, sync, resident_budget and span_id_filter_budget, "
            f"not {', '.join(sorted(unknown))}"
        )
    options: dict[str, Any] = {"sync": sync}
    if map_size:
        options["map_size"] = int(map_size)
    if resident_budget is not None:
        options["resident_budget"] = int(resident_budget)
    if span_id_filter_budget is not None:
        options["span_id_filter_budget"] = int(span_id_filter_budget)
    return LmdbBackend(path, **options)


@hookimpl
def agl_store_backends() -> dict[str, Any]:
    return {"lmdb": open_lmdb}
