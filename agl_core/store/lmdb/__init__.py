"""The embedded store on LMDB: ``LmdbStore(path)`` needs no server."""

from __future__ import annotations

import os

from agl_core.store.base import LightningStore
from agl_core.store.lmdb.backend import (
    DEFAULT_MAP_SIZE,
    DEFAULT_RESIDENT_BUDGET,
    DEFAULT_SPAN_ID_FILTER_BUDGET,
    LmdbBackend,
    default_data_dir,
)


class LmdbStore(LightningStore):
    """A :class:`LightningStore` on an LMDB environment in ``path`` (default ``$AGL_DATA_DIR`` or
    ``./.agl-data``).

    :param map_size: initial map size in bytes; the map doubles when full.
    :param sync: fsync every commit (default). Without it a commit survives a crash of the process
        but not of the machine.
    :param resident_budget: bytes of the data file kept mapped before they are released.
    :param span_id_filter_budget: bytes of memory for the span-id filters of all attempts.
    :param span_loop: the store writer's span loop, ``"compiled"`` or ``"python"`` (default:
        ``$AGL_SPAN_LOOP``, else compiled where the extension was built; see ``span_path.py``).
    :param inline_commits: let a lone stream's writes commit on the event loop, without the hand-over
        to the writer thread (default: ``$AGL_INLINE_COMMITS``, ``on`` or ``off``, else on; see
        ``writer.py``).
    """

    backend: LmdbBackend

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        sync: bool = True,
        resident_budget: int = DEFAULT_RESIDENT_BUDGET,
        span_id_filter_budget: int = DEFAULT_SPAN_ID_FILTER_BUDGET,
        span_loop: str | None = None,
        inline_commits: bool | None = None,
    ) -> None:
        super().__init__(
            LmdbBackend(
                path,
                map_size=map_size,
                sync=sync,
                resident_budget=resident_budget,
                span_id_filter_budget=span_id_filter_budget,
                span_loop=span_loop,
                inline_commits=inline_commits,
            )
        )

    @property
    def path(self) -> str:
        return self.backend.path


__all__ = ["LmdbBackend", "LmdbStore", "default_data_dir"]
