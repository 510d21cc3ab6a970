"""``agl plugins``: what is installed, from which distribution, and what each plugin provides.

A plugin that failed to load is listed with the error that stopped it (``--traceback`` for the
whole traceback), and so is a name two plugins provide (a conflict: looking that name up fails,
every other name works); either makes the command exit with 1, so it can serve as a check in CI.
Listing imports only the plugin modules, not the factories they name by import path.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from agl_core.plugins import AglPluginManager, get_plugin_manager
from agl_core.plugins.lifecycle import call_accepting

# Provider hooks, by the words the listing uses for them.
PROVIDERS = {
    "algorithms": "algorithms",
    "adapters": "adapters",
    "tracers": "tracers",
    "execution_strategies": "execution strategies",
    "store_backends": "store backends",
}
SERVICES = "server_services"
LIFECYCLE = ("agl_on_rollout_start", "agl_on_rollout_end", "agl_on_trace_start", "agl_on_trace_end")


@dataclass
class PluginInfo:
    name: str
    distribution: str
    module: str
    provides: dict[str, list[str]] = field(default_factory=dict)
    lifecycle_hooks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the listing as JSON")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of plugins that failed")


def collect(pm: AglPluginManager) -> list[PluginInfo]:
    """Every loaded plugin with what it provides, in load order."""
    infos: dict[str, PluginInfo] = {}
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        infos[name] = PluginInfo(name, pm.distribution_of(plugin), getattr(plugin, "__name__", type(plugin).__name__))
    for kind in PROVIDERS:
        for impl in getattr(pm.hook, f"agl_{kind}").get_hookimpls():
            info = infos.get(impl.plugin_name)
            if info is None:
                continue
            try:
                provided = impl.function() or {}
                info.provides[kind] = sorted(provided)
            except Exception as exc:
                info.errors.append(f"agl_{kind} raised {type(exc).__name__}: {exc}")
    for impl in pm.hook.agl_server_services.get_hookimpls():
        info = infos.get(impl.plugin_name)
        if info is not None:
            info.provides[SERVICES] = _services(impl.function)
    for hook in LIFECYCLE:
        for impl in getattr(pm.hook, hook).get_hookimpls():
            if impl.plugin_name in infos:
                infos[impl.plugin_name].lifecycle_hooks.append(hook)
    return list(infos.values())


def _services(function: Any) -> list[str]:
    """Names of the services a plugin adds to agl-server (listing them needs no running server)."""
    import asyncio

    try:
        services = asyncio.run(call_accepting(function, backend=None)) or []
    except Exception:
        return ["(services that need a store backend to be listed)"]
    names = []
    for service in services:
        names.append(getattr(service, "SERVICE_NAME", None) or type(service).__name__)
    return names


def _label(kind: str) -> str:
    return PROVIDERS.get(kind, "server services")


def run(args: argparse.Namespace) -> int:
    # This command reports load failures itself, once, below the listing.
    manager_log = logging.getLogger("agl_core.plugins.manager")
    manager_log.disabled = True
    try:
        pm = get_plugin_manager()
    finally:
        manager_log.disabled = False
    infos = collect(pm)
    conflicts = [provided for kind in PROVIDERS for provided in pm.conflicts(kind)]
    failures = pm.failures
    if args.json:
        payload = {
            "plugins": [asdict(info) for info in infos],
            "failures": [
                {
                    "name": f.name,
                    "distribution": f.distribution,
                    "error": f.error,
                    **({"traceback": f.traceback} if args.traceback else {}),
                }
                for f in failures
            ],
            "conflicts": [
                {
                    "kind": c.kind,
                    "name": c.name,
                    "plugins": [c.plugin, *(o.plugin for o in c.others)],
                    "message": c.conflict_message(),
                }
                for c in conflicts
            ],
        }
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 1 if failures or conflicts else 0
    width = max((len(info.name) for info in infos), default=10) + 2
    print(f"agl plugins ({len(infos)} loaded from the 'agl' entry points)")
    for info in infos:
        print(f"  {info.name:<{width}}{info.distribution}  ({info.module})")
        for kind, names in info.provides.items():
            if names:
                print(f"  {'':<{width}}  {_label(kind)}: {', '.join(names)}")
        if info.lifecycle_hooks:
            print(f"  {'':<{width}}  lifecycle hooks: {', '.join(info.lifecycle_hooks)}")
        for error in info.errors:
            print(f"  {'':<{width}}  error: {error}")
    if conflicts:
        print(
            f"\n{len(conflicts)} name(s) provided by more than one plugin; looking them up fails, "
            "everything else works:",
            file=sys.stderr,
        )
        for conflict in conflicts:
            print(f"  {conflict.conflict_message()}", file=sys.stderr)
    if failures:
        print(
            f"\n{len(failures)} plugin(s) failed to load; everything else works without them:",
            file=sys.stderr,
        )
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
            if args.traceback:
                print("    " + failure.traceback.replace("\n", "\n    "), file=sys.stderr)
    return 1 if failures or conflicts else 0
