"""The store: the interface, the embedded LMDB store, and bridges to other threads."""

from agl_core.store.backend import StoreBackend
from agl_core.store.base import UNSET, LightningStore
from agl_core.store.lmdb import LmdbBackend, LmdbStore
from agl_core.store.sync import SyncStore, ThreadSafeStore

__all__ = ["UNSET", "LightningStore", "LmdbBackend", "LmdbStore", "StoreBackend", "SyncStore", "ThreadSafeStore"]
