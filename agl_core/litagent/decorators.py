"""Agents from plain functions: ``@rollout``, ``@llm_rollout``, ``@prompt_rollout``.

The function's first parameter receives the task. Every other parameter is filled by its name
or its annotation:

- ``rollout`` (or annotated ``Rollout``): the rollout, with its attempt;
- ``resources`` (or annotated ``NamedResources``): all resources, by name;
- ``llm`` (or annotated ``LLM``/``ProxyLLM``): the LLM resource. A ``ProxyLLM`` is handed over as an
  ``LLM`` whose endpoint is the proxy's route for this attempt, so every call is recorded;
- ``prompt_template`` (or annotated ``PromptTemplate``): the prompt-template resource;
- any other name: the resource of that name.

Sync and ``async def`` functions both work::

    @llm_rollout
    async def solve(task: dict, llm: LLM) -> float:
        ...
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import typing
from collections.abc import Callable
from typing import Any

from agl_core.litagent.litagent import LitAgent, RolloutResult
from agl_core.types.core import Rollout
from agl_core.types.resources import LLM, PromptTemplate, ProxyLLM, Resource

# What a parameter receives.
_ROLLOUT, _RESOURCES, _LLM, _PROMPT, _NAMED = "rollout", "resources", "llm", "prompt_template", "named"


def _annotation_kind(annotation: Any) -> str | None:
    names = {getattr(a, "__name__", str(a)) for a in _flatten(annotation)}
    if names & {"LLM", "ProxyLLM"}:
        return _LLM
    if "PromptTemplate" in names:
        return _PROMPT
    if names & {"Rollout", "AttemptedRollout"}:
        return _ROLLOUT
    if "NamedResources" in names:
        return _RESOURCES
    return None


def _flatten(annotation: Any) -> list[Any]:
    if annotation is inspect.Parameter.empty:
        return []
    if isinstance(annotation, str):
        return [part.strip() for part in annotation.replace("|", ",").replace("[", ",").replace("]", ",").split(",")]
    args = typing.get_args(annotation)
    return [annotation, *(a for arg in args for a in _flatten(arg))] if args else [annotation]


class FunctionalLitAgent(LitAgent[Any]):
    """A :class:`LitAgent` around a rollout function (what the decorators return).

    Calling the agent calls the function unchanged, so it stays testable on its own.
    """

    def __init__(self, func: Callable[..., Any], *, requires: str | None = None) -> None:
        super().__init__()
        self.func = func
        self._is_async = inspect.iscoroutinefunction(func)
        self._plan = self._plan_parameters(func)
        if requires is not None and requires not in self._plan.values():
            decorator = "llm_rollout" if requires == _LLM else "prompt_rollout"
            raise TypeError(
                f"@{decorator} needs {func.__qualname__} to take the {requires.replace('_', ' ')}: "
                "add a parameter "
                f"named {requires!r} (or annotated {'LLM' if requires == _LLM else 'PromptTemplate'})"
            )
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    @staticmethod
    def _plan_parameters(func: Callable[..., Any]) -> dict[str, str]:
        """Which value every parameter after the task receives."""
        signature = inspect.signature(func)
        try:
            hints = typing.get_type_hints(func)
        except Exception:  # unresolvable forward references: fall back to the raw annotations
            hints = {}
        params = list(signature.parameters.values())
        if not params or params[0].kind not in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise TypeError(f"{func.__qualname__} must take the task as its first positional parameter")
        plan: dict[str, str] = {}
        for param in params[1:]:
            if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                continue
            if param.name in (_ROLLOUT, _RESOURCES, _LLM, _PROMPT):
                plan[param.name] = param.name
            else:
                plan[param.name] = _annotation_kind(hints.get(param.name, param.annotation)) or _NAMED
        return plan

    @property
    def name(self) -> str:
        return self.func.__qualname__

    def is_async(self) -> bool:
        return self._is_async

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def rollout(self, task: Any, resources: dict[str, Resource], rollout: Rollout) -> RolloutResult:
        if self._is_async:
            raise TypeError(f"{self.name} is a coroutine function; the runner awaits rollout_async() instead")
        return self.func(task, **self._arguments(resources, rollout))  # type: ignore[no-any-return]

    async def rollout_async(self, task: Any, resources: dict[str, Resource], rollout: Rollout) -> RolloutResult:
        if not self._is_async:
            raise TypeError(f"{self.name} is not a coroutine function; the runner calls rollout() instead")
        return await self.func(task, **self._arguments(resources, rollout))  # type: ignore[no-any-return]

    def _arguments(self, resources: dict[str, Resource], rollout: Rollout) -> dict[str, Any]:
        signature = inspect.signature(self.func)
        arguments: dict[str, Any] = {}
        for name, kind in self._plan.items():
            if kind == _ROLLOUT:
                arguments[name] = rollout
            elif kind == _RESOURCES:
                arguments[name] = resources
            elif kind == _LLM:
                arguments[name] = _for_attempt(_pick(resources, name, (LLM,), "an LLM", rollout), rollout)
            elif kind == _PROMPT:
                arguments[name] = _pick(resources, name, (PromptTemplate,), "a prompt template", rollout)
            elif name in resources:
                arguments[name] = resources[name]
            elif signature.parameters[name].default is inspect.Parameter.empty:
                raise TypeError(
                    f"{self.name} takes {name!r}, but the rollout's resources have no resource of that name "
                    f"(they have: {', '.join(sorted(resources)) or 'none'})"
                )
        return arguments

    def __reduce_ex__(self, protocol: Any) -> Any:
        # The decorator replaced the function in its module, so pickle (runner processes) finds
        # the agent again by the function's module and name.
        module, qualname = self.func.__module__, self.func.__qualname__
        target: Any = sys.modules.get(module)
        for part in qualname.split("."):
            target = getattr(target, part, None)
        if target is self:
            return (_import_attribute, (module, qualname))
        return super().__reduce_ex__(protocol)


def _import_attribute(module: str, qualname: str) -> Any:
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _pick(resources: dict[str, Resource], name: str, types: tuple[type, ...], what: str, rollout: Rollout) -> Any:
    """The resource a parameter asks for: by its name, else the only one of its type."""
    if isinstance(resources.get(name), types):
        return resources[name]
    candidates = {key: value for key, value in resources.items() if isinstance(value, types)}
    if len(candidates) == 1:
        return next(iter(candidates.values()))
    if not candidates:
        raise LookupError(
            f"rollout {rollout.rollout_id!r} has no {what.split(' ', 1)[1]} resource "
            f"(resources: {', '.join(sorted(resources)) or 'none'}); publish one with store.add_resources() "
            "or Trainer(initial_resources=...)"
        )
    raise LookupError(
        f"rollout {rollout.rollout_id!r} has several {what.split(' ', 1)[1]} resources "
        f"({', '.join(sorted(candidates))}); "
        "name the parameter after the one the agent uses"
    )


def _for_attempt(llm: LLM, rollout: Rollout) -> LLM:
    """A ProxyLLM becomes a plain LLM on the proxy's route for this attempt."""
    if isinstance(llm, ProxyLLM):
        attempt_id = rollout.attempt.attempt_id if rollout.attempt is not None else None
        return LLM(
            endpoint=llm.get_base_url(rollout.rollout_id, attempt_id),
            model=llm.model,
            api_key=llm.api_key,
            sampling_parameters=dict(llm.sampling_parameters),
        )
    return llm


def rollout(func: Callable[..., Any]) -> FunctionalLitAgent:
    """Make an agent of a function ``f(task, ...)``; its other parameters are injected by name or
    annotation (see the module documentation)."""
    return FunctionalLitAgent(func)


def llm_rollout(func: Callable[..., Any]) -> FunctionalLitAgent:
    """Like :func:`rollout`, for a function that takes the LLM resource (``llm`` or annotated ``LLM``)."""
    return FunctionalLitAgent(func, requires=_LLM)


def prompt_rollout(func: Callable[..., Any]) -> FunctionalLitAgent:
    """Like :func:`rollout`, for a function that takes the prompt template (``prompt_template`` or
    annotated ``PromptTemplate``)."""
    return FunctionalLitAgent(func, requires=_PROMPT)
