"""``agl store``: the server's store as a whole: its size (``stats``) and online backups (``backup``).

To add a subcommand, write a module with ``add_arguments(parser)`` and ``run(args) -> int`` and add
one line to :data:`SUBCOMMANDS` (see :mod:`agl_core.cli.command`).
"""

from __future__ import annotations

from agl_core.cli.command import group

SUBCOMMANDS: list[tuple[str, str, str]] = [
    ("backup", "agl_core.cli.store_backup", "write a compacted, consistent copy of the store to a directory here"),
    ("stats", "agl_core.cli.stats:STATS", "counts and data size of the store (as `agl stats`)"),
]

add_arguments, run = group(SUBCOMMANDS)
