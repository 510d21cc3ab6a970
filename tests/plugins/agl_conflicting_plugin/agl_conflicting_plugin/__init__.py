"""A third-party agl plugin that claims the built-in algorithm name ``baseline`` (a conflict) and
provides ``unloadable``, whose module cannot be imported.

Both factories are named by import path, and the module behind them raises when imported: every
process that never looks these names up shows that the plugin's factories are not imported.
"""

from __future__ import annotations

from typing import Any

from agl_core import hookimpl


@hookimpl
def agl_algorithms() -> dict[str, Any]:
    return {
        "baseline": "agl_conflicting_plugin.heavy:Impostor",
        "unloadable": "agl_conflicting_plugin.heavy:Unloadable",
    }
