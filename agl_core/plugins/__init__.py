"""The plugin system: pluggy with project name and entry-point group ``agl``.

Plugin authors import ``hookimpl`` only::

    from agl_core import hookimpl

    @hookimpl
    def agl_algorithms():
        return {"my-algo": MyAlgorithm}
"""

import pluggy

from agl_core.plugins.manager import (
    AglPluginManager,
    PluginError,
    PluginFailure,
    Provided,
    get_plugin_manager,
)

hookimpl = pluggy.HookimplMarker("agl")

__all__ = ["AglPluginManager", "PluginError", "PluginFailure", "Provided", "get_plugin_manager", "hookimpl"]
