"""agl: train AI agents with reinforcement learning and prompt optimisation.

The public API is re-exported here; submodules hold the details.
"""

from agl_core.errors import (
    AglError,
    AlreadyExistsError,
    BatchError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from agl_core.plugins import hookimpl
from agl_core.store import LightningStore, LmdbStore, SyncStore, ThreadSafeStore
from agl_core.types import *  # noqa: F403
from agl_core.types import __all__ as _types_all

__version__ = "0.1.0"

__all__ = [
    "AglError",
    "AlreadyExistsError",
    "BatchError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "LightningStore",
    "LmdbStore",
    "NotFoundError",
    "ResourceExhaustedError",
    "SyncStore",
    "ThreadSafeStore",
    "UnauthenticatedError",
    "UnavailableError",
    "hookimpl",
    *_types_all,
]
