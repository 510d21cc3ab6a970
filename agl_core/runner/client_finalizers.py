"""Keeps a collected async LLM client from cutting another client's connection.

openai's ``AsyncHttpxClientWrapper.__del__`` schedules ``aclose()`` on whichever event loop runs
in the thread that happens to collect the client. An ``AsyncOpenAI`` sits in reference cycles, so
the cyclic collector frees it, and in the same pass it finalizes the client's idle sockets, which
closes their file descriptors. By the time the scheduled ``aclose()`` runs, a descriptor number
may belong to a new connection of the loop that owned the old one, and closing the old transport
unregisters the new one from that loop's selector: the new request's response arrives, is never
read, and the agent waits forever. Runners of the ``shm`` strategy are threads with a loop each,
so an agent that makes an ``AsyncOpenAI`` per rollout without closing it (as most examples do) hung
a run of twelve rollouts about once in fifty on a loaded two-core machine. openai closed the
report (openai/openai-python#2440) in favour of explicit cleanup, which an agent may not do.

:func:`guard_client_finalizers` replaces that finalizer, in every client library known to carry
it, with one that leaves the client alone: its idle connections are closed by their sockets' own
finalizers, and a connection in use is held by its loop, so it is never garbage. Each library is
guarded when it is imported (a wrapt post-import hook), so the guard costs nothing for libraries
an agent never loads.
"""

from __future__ import annotations

import functools
import threading
from types import ModuleType
from typing import Any

import wrapt

# module -> the httpx.AsyncClient subclass whose __del__ schedules aclose() on the running loop.
FINALIZING_CLIENTS = {
    "openai._base_client": "AsyncHttpxClientWrapper",
    "anthropic._base_client": "AsyncHttpxClientWrapper",
    "langsmith._base_client": "AsyncHttpxClientWrapper",
    "langchain_openai.chat_models._client_utils": "_AsyncHttpxClientWrapper",
    "litellm.llms.openai.common_utils": "OpenAIAsyncHTTPClient",
}

_lock = threading.Lock()
_installed = False


def _leave_alone(self: Any) -> None:
    """The replacement finalizer: nothing to schedule (see the module docstring)."""


def is_guarded(cls: type) -> bool:
    return cls.__dict__.get("__del__") is _leave_alone


def _guard(name: str, module: ModuleType) -> None:
    cls = getattr(module, name, None)
    if isinstance(cls, type) and "__del__" in cls.__dict__:  # a release without it has nothing to guard
        cls.__del__ = _leave_alone  # type: ignore[attr-defined]


def guard_client_finalizers() -> None:
    """Guard every library of :data:`FINALIZING_CLIENTS`, now or when it is imported (once per
    process). The runner calls it when it starts, before any agent makes a client."""
    global _installed
    with _lock:
        if _installed:
            return
        for module, name in FINALIZING_CLIENTS.items():
            wrapt.register_post_import_hook(functools.partial(_guard, name), module)
        _installed = True
