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


def test_two_plugins_providing_one_name_fail_the_lookup_of_that_name_only() -> None:
    first, second = _Algorithms("a"), _Algorithms("b")
    pm = get_plugin_manager(load_entrypoints=False, plugins=[first, second])
    with pytest.raises(PluginError, match="algorithm 'shared' is provided by both plugin") as caught:
        pm.lookup("algorithms", "shared")
    assert pm.get_name(first) in str(caught.value) and pm.get_name(second) in str(caught.value)
    assert pm.lookup("algorithms", "a").factory is first  # other names still resolve
    assert [c.name for c in pm.conflicts("algorithms")] == ["shared"]


class _ByPath:
    @hookimpl
    def agl_algorithms(self) -> dict[str, object]:
        return {"decimal": "decimal:Decimal", "missing": "agl_no_such_module_here:Thing"}


def test_a_factory_named_by_import_path_is_imported_at_lookup() -> None:
    pm = get_plugin_manager(load_entrypoints=False, plugins=[_ByPath()])
    provided = pm.provided("algorithms")
    assert provided["decimal"].lazy and provided["decimal"].target == "decimal:Decimal"
    import decimal

    assert pm.lookup("algorithms", "decimal").factory is decimal.Decimal
    with pytest.raises(PluginError, match="could not be loaded from 'agl_no_such_module_here:Thing'"):
        _ = pm.lookup("algorithms", "missing").factory


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
