"""The store's files are private to the user running it: they hold task inputs and ``LLM.api_key``
values. A data directory this code creates is 0700; LMDB creates its files 0600 (``FILE_MODE``).
A directory that already exists keeps the modes its owner gave it."""

from __future__ import annotations

import os

DIR_MODE = 0o700
FILE_MODE = 0o600


def create_private_dir(path: str) -> None:
    """Create ``path`` (and missing parents) readable by its owner only, unless it exists."""
    if os.path.isdir(path):
        return
    os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    os.chmod(path, DIR_MODE)  # makedirs' mode is filtered by the umask; this one is not
