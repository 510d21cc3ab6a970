"""The hooks of agl: the reference documentation for plugin authors.

A plugin is a module (or object) with functions named like the specs below, each decorated with
``agl_core.hookimpl``, declared as an entry point in the ``agl`` group of its package::

    [project.entry-points.agl]
    my_plugin = "my_package.agl_plugin"

Provider hooks return what the plugin contributes as ``{registry name: factory}``; a factory is a
class or a callable returning an instance. pluggy always calls hooks with keyword arguments, and an
implementation may take any subset of a spec's parameters. Declare them as ordinary parameters:
pluggy does not see keyword-only ones (after ``*``), and an implementation that uses them fails to
load with an unknown-argument error.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("agl")


# --- providers -----------------------------------------------------------------------------------


@hookspec
def agl_algorithms() -> dict[str, Any]:
    """Algorithms, by the name ``Trainer(algorithm="name")`` picks them with.

    A factory builds an :class:`agl_core.algorithm.Algorithm` (keyword arguments come from the
    Trainer's dict form, e.g. ``{"type": "name", "beam_width": 4}``).
    """


@hookspec
def agl_adapters() -> dict[str, Any]:
    """Adapters (spans to training data), by name."""


@hookspec
def agl_tracers() -> dict[str, Any]:
    """Tracers (collect an agent's spans and deliver them to the store), by name."""


@hookspec
def agl_execution_strategies() -> dict[str, Any]:
    """Execution strategies (how algorithm and runners are laid out in threads/processes/machines), by name."""


@hookspec
def agl_store_backends() -> dict[str, Any]:
    """Store backends, by the name ``agl-server --store NAME`` picks them with.

    A factory is called with ``path`` (the data directory) and further keyword options, and
    returns an :class:`agl_core.store.backend.StoreBackend`.
    """


@hookspec
def agl_server_services(backend: Any) -> list[Any]:
    """Extra gRPC services agl-server runs on its port next to the store service.

    Return objects with a ``register(server: grpc.aio.Server) -> list[str]`` method that adds
    their handlers to the server and returns the full service names (for reflection).

    :param backend: the store backend the server serves.
    """
