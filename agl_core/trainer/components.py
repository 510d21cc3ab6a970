"""Building the Trainer's parts from what the user gave: an instance, a class, a factory, a
registry name (a plugin's), ``"module:attribute"``, or ``{"type": name, **options}``."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from agl_core.plugins import AglPluginManager, PluginError
from agl_core.tracer.base import NullTracer, Tracer

logger = logging.getLogger(__name__)

DEFAULT_TRACER = "otel"


def import_object(path: str) -> Any:
    """``"package.module:attribute.path"`` -> the attribute."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{path!r} is not an import path; write it as 'package.module:attribute'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"cannot import {module_name!r} (from {path!r}): {exc}") from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AttributeError(f"{module_name!r} has no attribute {attribute!r} (from {path!r})") from None
    return target


def build(
    spec: Any,
    *,
    kind: str,
    base: type,
    pm: AglPluginManager,
    default: Callable[[], Any] | None = None,
) -> Any:
    """Turn ``spec`` into an instance of ``base``.

    :param kind: the plugin registry to look names up in (``algorithms``, ``tracers``, ...).
    :raises PluginError: for a name nothing provides (the message lists what is installed).
    :raises TypeError: for a spec that builds something else than a ``base``.
    """
    noun = kind[:-1].replace("_", " ")
    if spec is None:
        return default() if default is not None else None
    if isinstance(spec, base):
        return spec
    options: dict[str, Any] = {}
    if isinstance(spec, Mapping):
        options = dict(spec)
        if "type" not in options:
            raise ValueError(f"a {noun} given as a dict needs a 'type' key (a registry name or 'module:attr')")
        spec = options.pop("type")
    if isinstance(spec, str):
        factory = import_object(spec) if ":" in spec else pm.lookup(kind, spec).factory
        if isinstance(factory, base):  # "module:attr" naming a ready-made instance
            if options:
                raise TypeError(f"{spec!r} is a {noun} instance already; it takes no options")
            return factory
    elif callable(spec):
        factory = spec
    else:
        raise TypeError(f"cannot make a {noun} of a {type(spec).__name__}; give an instance, class, factory or name")
    instance = factory(**options)
    if not isinstance(instance, base):
        raise TypeError(
            f"{getattr(factory, '__name__', factory)!r} made a {type(instance).__name__}, not a {base.__name__}"
        )
    return instance


def default_tracer(pm: AglPluginManager) -> Any:
    """The default tracer spec: ``otel`` when a plugin provides it, else :class:`NullTracer` (with
    a warning: agents' LLM calls then go untraced)."""
    try:
        pm.lookup("tracers", DEFAULT_TRACER)
        return DEFAULT_TRACER
    except PluginError:
        logger.warning(
            "no tracer named %r is installed, so agents' LLM calls are not traced; rewards and spans "
            "the agents return are still stored (install the otel tracer plugin, or pass tracer=...)",
            DEFAULT_TRACER,
        )
        return NullTracer


def build_tracer(spec: Any, pm: AglPluginManager) -> Tracer:
    """The tracer ``spec`` names (None: :func:`default_tracer`)."""
    return build(spec if spec is not None else default_tracer(pm), kind="tracers", base=Tracer, pm=pm)  # type: ignore[no-any-return]
