"""agl: train AI agents with reinforcement learning and prompt optimisation.

The public API is re-exported here; submodules hold the details.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads these
    from agl_core.errors import (  # noqa: F401
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
    from agl_core.plugins import hookimpl  # noqa: F401
    from agl_core.store import LightningStore, LmdbStore, SyncStore, ThreadSafeStore  # noqa: F401
    from agl_core.types import *  # noqa: F403

__version__ = "0.1.0"

# Loaded on first use (PEP 562): every agl process imports this package (``agl --help`` too), and
# the store brings grpc and LMDB with it.
_EXPORTS = {
    **dict.fromkeys(
        [
            "AglError",
            "AlreadyExistsError",
            "BatchError",
            "DeadlineExceededError",
            "FailedPreconditionError",
            "InvalidArgumentError",
            "NotFoundError",
            "ResourceExhaustedError",
            "UnauthenticatedError",
            "UnavailableError",
        ],
        "agl_core.errors",
    ),
    "hookimpl": "agl_core.plugins",
    **dict.fromkeys(["LightningStore", "LmdbStore", "SyncStore", "ThreadSafeStore"], "agl_core.store"),
}

_OWN = [
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
]


def _types_all() -> list[str]:
    return list(importlib.import_module("agl_core.types").__all__)


def __getattr__(name: str) -> Any:
    if name == "__all__":  # `from agl_core import *`: the names above and every type
        value: Any = [*_OWN, *_types_all()]
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _types_all():
        value = getattr(importlib.import_module("agl_core.types"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_OWN, *_types_all()})
