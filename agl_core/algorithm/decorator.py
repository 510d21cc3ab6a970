"""``@algo``: an algorithm from a function.

The function's parameters are filled by name: ``store``, ``adapter``, ``initial_resources``,
``train_dataset``, ``val_dataset``, ``rollout_config`` and ``trainer``. An ``async def`` gets the
async store and shares its event loop; a plain function runs in a thread and gets the store as
blocking calls (a :class:`~agl_core.store.SyncStore`). When the function does not take
``initial_resources``, they are published before it runs, so runners find them::

    @algo
    async def evaluate(*, store, train_dataset):
        outcomes = await run_rollouts(store, train_dataset, mode="train")
        return mean_reward(outcomes)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from agl_core.algorithm.base import Algorithm

INJECTABLE = (
    "store",
    "adapter",
    "initial_resources",
    "train_dataset",
    "val_dataset",
    "rollout_config",
    "trainer",
)


class FunctionalAlgorithm(Algorithm):
    """An :class:`Algorithm` around a function (what ``@algo`` returns); calling it calls the function."""

    def __init__(self, func: Callable[..., Any]) -> None:
        super().__init__()
        self.func = func
        self._is_async = inspect.iscoroutinefunction(func)
        parameters = inspect.signature(func).parameters
        self._takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        unknown = [
            name
            for name, p in parameters.items()
            if name not in INJECTABLE
            and p.default is inspect.Parameter.empty
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        ]
        if unknown:
            raise TypeError(
                f"@algo cannot fill the parameter(s) {', '.join(unknown)} of {func.__qualname__}; it fills "
                f"{', '.join(INJECTABLE)} by name (give other parameters a default)"
            )
        self._takes = {name for name in INJECTABLE if name in parameters or self._takes_any}
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        return self.func.__qualname__

    def is_async(self) -> bool:
        return self._is_async

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def run(self, train_dataset: Any = None, val_dataset: Any = None) -> Any:
        if self._is_async:
            return self._run_async(train_dataset, val_dataset)
        if "initial_resources" not in self._takes and self.get_initial_resources():
            self.get_sync_store().add_resources(self.get_initial_resources())
        return self.func(**self._arguments(train_dataset, val_dataset, self.get_sync_store))

    async def _run_async(self, train_dataset: Any, val_dataset: Any) -> Any:
        if "initial_resources" not in self._takes:
            await self.publish_initial_resources()
        return await self.func(**self._arguments(train_dataset, val_dataset, self.get_store))

    def _arguments(self, train_dataset: Any, val_dataset: Any, store: Callable[[], Any]) -> dict[str, Any]:
        values: dict[str, Callable[[], Any]] = {
            "store": store,
            "adapter": lambda: self._adapter,
            "initial_resources": self.get_initial_resources,
            "train_dataset": lambda: train_dataset,
            "val_dataset": lambda: val_dataset,
            "rollout_config": self.get_rollout_config,
            "trainer": lambda: self._trainer_ref() if self._trainer_ref is not None else None,
        }
        return {name: values[name]() for name in self._takes}


def algo(func: Callable[..., Any]) -> FunctionalAlgorithm:
    """Make an :class:`Algorithm` of a function whose parameters are filled by name (see the module)."""
    return FunctionalAlgorithm(func)
