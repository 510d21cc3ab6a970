"""Calling lifecycle hooks (``agl_on_*``): each implementation on its own, with the arguments it
declares, awaited if it is a coroutine, its failures logged and contained.

``pm.hook.agl_on_rollout_end(...)`` would stop at the first implementation that raises and
knows nothing of coroutines, so agl walks the implementations itself (in pluggy's order): one
broken plugin neither stops the others nor fails the attempt it observes.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import pluggy

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1024)
def _accepts(fn: Callable[..., Any]) -> frozenset[str] | None:
    """The keyword arguments ``fn`` takes; None when it takes any (``**kwargs``)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )


async def call_accepting(fn: Callable[..., Any], /, **kwargs: Any) -> Any:
    """Call ``fn`` with the subset of ``kwargs`` it declares; await the result if it is awaitable."""
    accepted = _accepts(fn)
    result = fn(**(kwargs if accepted is None else {k: v for k, v in kwargs.items() if k in accepted}))
    if inspect.isawaitable(result):
        result = await result
    return result


async def notify(pm: pluggy.PluginManager | None, hook: str, /, **kwargs: Any) -> None:
    """Call every implementation of lifecycle hook ``hook`` (in pluggy's order)."""
    if pm is None:
        return
    for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):
        try:
            await call_accepting(impl.function, **kwargs)
        except Exception:
            logger.exception("agl plugin %r failed in %s; carrying on without it", impl.plugin_name, hook)
