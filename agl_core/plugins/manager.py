"""Building the plugin manager: entry points loaded one by one, an off switch, a block list.

A plugin that fails to import is reported once, with its name, its distribution and the error,
and left out; everything else keeps working.

Start-up stays fast because a provider hook may name a factory by its import path
(``"package.module:attr"``) instead of importing it: the module is imported when that name is
looked up, not when the plugin loads. Two plugins that provide one name are a conflict of that
name only: looking it up fails with both plugins named, every other name still works, and
``agl plugins`` lists the conflict.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from agl_core.plugins import hookspecs

logger = logging.getLogger(__name__)

PROJECT = "agl"
ENTRY_POINT_GROUP = "agl"
DISABLE_AUTOLOAD_ENV = "AGL_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_ENV = "AGL_DISABLE_PLUGINS"


class PluginError(Exception):
    """A plugin could not be used; the message names it and says why."""


def _noun(kind: str) -> str:
    """'store_backends' -> 'store backend'."""
    return (kind[:-1] if kind.endswith("s") else kind).replace("_", " ")


@dataclass(frozen=True)
class PluginFailure:
    name: str
    distribution: str
    error: str
    traceback: str

    def __str__(self) -> str:
        return f"agl plugin {self.name!r} (from {self.distribution}) failed to load: {self.error}"


def _import_path(target: str) -> Any:
    """The object ``"package.module:attr.sub"`` names."""
    module_name, sep, attrs = target.partition(":")
    if not sep or not module_name or not attrs:
        raise ValueError(f"{target!r} is not an import path of the form 'package.module:attr'")
    obj: Any = importlib.import_module(module_name)
    for attr in attrs.split("."):
        obj = getattr(obj, attr)
    return obj


@dataclass(frozen=True)
class Provider:
    """A plugin that provides a name, and where it came from."""

    plugin: str
    distribution: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} ({self.distribution})"


@dataclass
class Provided:
    """One thing a plugin provides, with where it came from.

    ``target`` is what the hook returned: a factory, or the import path of one (imported by
    :attr:`factory` on first use). ``others`` are further plugins that provide the same name: a
    conflict, which :meth:`AglPluginManager.lookup` refuses to resolve.
    """

    kind: str
    name: str
    target: Any
    plugin: str
    distribution: str
    others: list[Provider] = field(default_factory=list)
    _loaded: Any = field(default=None, repr=False, compare=False)

    @property
    def lazy(self) -> bool:
        return isinstance(self.target, str)

    @property
    def factory(self) -> Any:
        """The factory, imported now if the plugin gave its import path.

        :raises PluginError: when the import fails; the message names the plugin and the path.
        """
        if not self.lazy:
            return self.target
        if self._loaded is None:
            try:
                self._loaded = _import_path(self.target)
            except Exception as exc:
                raise PluginError(
                    f"{_noun(self.kind)} {self.name!r} of plugin {self.plugin!r} ({self.distribution}) "
                    f"could not be loaded from {self.target!r}: {type(exc).__name__}: {exc}"
                ) from exc
        return self._loaded

    def conflict_message(self) -> str:
        providers = [Provider(self.plugin, self.distribution), *self.others]
        listed = " and ".join(str(p) for p in providers)
        return (
            f"{_noun(self.kind)} {self.name!r} is provided by both {listed}; uninstall one or block one "
            f"with {BLOCK_ENV}=NAME (plugin names as `agl plugins` lists them)"
        )


class AglPluginManager(pluggy.PluginManager):
    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self.distributions: dict[str, str] = {}

    def distribution_of(self, plugin: object) -> str:
        return self.distributions.get(self.get_name(plugin) or "", "registered in code")

    def provided(self, kind: str, **kwargs: Any) -> dict[str, Provided]:
        """Merge what every plugin returns from ``agl_<kind>`` into one registry.

        Nothing is imported for providers given by import path. A name two plugins provide is
        kept once, with the other plugins in ``others`` (see :meth:`lookup`); the first plugin in
        load order is the entry's ``plugin``.
        """
        hook = getattr(self.hook, f"agl_{kind}")
        registry: dict[str, Provided] = {}
        for impl in reversed(hook.get_hookimpls()):  # registration order
            plugin_name = impl.plugin_name
            try:
                result = impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception as exc:
                logger.error("agl plugin %r failed in agl_%s: %s", plugin_name, kind, exc)
                self.failures.append(
                    PluginFailure(
                        plugin_name,
                        self.distribution_of(impl.plugin),
                        f"agl_{kind} raised {exc!r}",
                        traceback.format_exc(),
                    )
                )
                continue
            for name, target in (result or {}).items():
                existing = registry.get(name)
                if existing is None:
                    registry[name] = Provided(kind, name, target, plugin_name, self.distribution_of(impl.plugin))
                elif existing.target is not target and existing.target != target:
                    existing.others.append(Provider(plugin_name, self.distribution_of(impl.plugin)))
        return registry

    def conflicts(self, kind: str) -> list[Provided]:
        """The names of ``kind`` that more than one plugin provides."""
        return [p for p in self.provided(kind).values() if p.others]

    def lookup(self, kind: str, name: str, **kwargs: Any) -> Provided:
        """The provider of ``name`` among the ``kind`` registry.

        :raises PluginError: when no plugin provides ``name`` (the message lists what exists) or
            more than one does (the message names them).
        """
        registry = self.provided(kind, **kwargs)
        if name not in registry:
            known = ", ".join(sorted(registry)) or "none"
            hint = ""
            broken = [f for f in self.failures if f.name == name or name in f.error]
            if self.failures:
                hint = " Plugins that failed to load: " + "; ".join(str(f) for f in (broken or self.failures))
            raise PluginError(f"no {_noun(kind)} named {name!r}; installed: {known}.{hint}")
        provided = registry[name]
        if provided.others:
            raise PluginError(provided.conflict_message())
        return provided


def _blocked(disabled: Iterable[str]) -> set[str]:
    names = {n.strip() for n in os.environ.get(BLOCK_ENV, "").split(",") if n.strip()}
    return names | set(disabled)


def get_plugin_manager(
    *, load_entrypoints: bool | None = None, disabled: Iterable[str] = (), plugins: Iterable[object] = ()
) -> AglPluginManager:
    """A new plugin manager with the installed plugins loaded.

    :param load_entrypoints: load plugins from the ``agl`` entry-point group; default: unless
        ``AGL_DISABLE_PLUGIN_AUTOLOAD`` is set.
    :param disabled: plugin (entry point) names not to load; ``AGL_DISABLE_PLUGINS`` adds more
        (comma-separated).
    :param plugins: further plugin objects to register (modules or instances), after the entry points.
    """
    pm = AglPluginManager()
    for name in _blocked(disabled):
        pm.set_blocked(name)
    if load_entrypoints is None:
        load_entrypoints = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if load_entrypoints:
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if pm.is_blocked(entry_point.name) or pm.has_plugin(entry_point.name):
                continue
            distribution = (
                f"{entry_point.dist.name} {entry_point.dist.version}" if entry_point.dist is not None else "unknown"
            )
            try:
                plugin = entry_point.load()
                pm.register(plugin, name=entry_point.name)
            except Exception as exc:
                failure = PluginFailure(
                    entry_point.name, distribution, f"{type(exc).__name__}: {exc}", traceback.format_exc()
                )
                pm.failures.append(failure)
                logger.error("%s", failure)
                continue
            pm.distributions[entry_point.name] = distribution
    for plugin in plugins:
        pm.register(plugin)
    # A misspelt hook (agl_algorithm instead of agl_algorithms) fails here, loudly.
    pm.check_pending()
    return pm
