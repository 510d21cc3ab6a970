"""The plugin manager with plugins registered in code (entry-point loading is tested with real
packages in tests/plugins)."""

from __future__ import annotations

import pytest

from agl_core import hookimpl
from agl_core.plugins import PluginError, get_plugin_manager


class _Services:
    @hookimpl
    def agl_server_services(self, backend: object) -> list[object]:
        return [("service-for", backend)]


class _Algorithms:
    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl
    def agl_algorithms(self) -> dict[str, object]:
        return {"shared": self, self.name: self}


def test_hooks_receive_their_arguments_by_keyword() -> None:
    pm = get_plugin_manager(load_entrypoints=False, plugins=[_Services()])
    assert pm.hook.agl_server_services(backend="b") == [[("service-for", "b")]]


def test_two_plugins_providing_one_name_is_a_clear_error() -> None:
    pm = get_plugin_manager(load_entrypoints=False, plugins=[_Algorithms("a"), _Algorithms("b")])
    with pytest.raises(PluginError, match="algorithm 'shared' is provided by both plugin"):
        pm.provided("algorithms")


def test_unknown_name_lists_what_is_installed() -> None:
    pm = get_plugin_manager(load_entrypoints=False, plugins=[_Algorithms("only")])
    with pytest.raises(PluginError, match="no algorithm named 'missing'; installed: only, shared"):
        pm.lookup("algorithms", "missing")


def test_misspelt_hook_fails_loudly() -> None:
    class Misspelt:
        @hookimpl
        def agl_algorithm(self) -> dict[str, object]:  # missing the s
            return {}

    with pytest.raises(Exception, match="agl_algorithm"):
        get_plugin_manager(load_entrypoints=False, plugins=[Misspelt()])
